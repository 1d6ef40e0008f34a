"""Managers: every business rule of Rota, one module per area. No Flask here."""
