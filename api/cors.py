"""CORS for browser clients of the origins in ROTA_CORS_ORIGINS (none by default: no CORS
headers at all). Credentials stay off: browsers send the bearer token or API key themselves,
never cookies, so no origin can ride on a signed-in session."""

from __future__ import annotations

from flask_cors import CORS

# What a browser client must be able to read from a response.
EXPOSED_HEADERS = ["X-Request-ID", "ETag", "Location", "Retry-After", "RateLimit-Limit",
                   "RateLimit-Remaining", "RateLimit-Reset", "Idempotent-Replayed"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key",
                   "X-Request-ID"]
PREFLIGHT_CACHE_SECONDS = 600


def init_cors(app) -> None:
    origins = app.config["ROTA_CORS_ORIGINS"]
    if not origins:
        return
    CORS(app, resources={r"/api/v1/*": {"origins": origins}}, supports_credentials=False,
         expose_headers=EXPOSED_HEADERS, allow_headers=ALLOWED_HEADERS,
         max_age=PREFLIGHT_CACHE_SECONDS)
