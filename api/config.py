"""Settings from the environment, read once at start."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def var_dir() -> Path:
    return Path(os.environ.get("ROTA_VAR_DIR", ROOT / "var"))


def jwt_secret(environment: str) -> str:
    """`ROTA_JWT_SECRET`; outside production one is generated once and kept under var/."""
    secret = os.environ.get("ROTA_JWT_SECRET")
    if secret:
        return secret
    if environment == "production":
        raise ConfigError("ROTA_JWT_SECRET must be set in production; refusing to start.")
    path = var_dir() / "jwt_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several workers start at once, exactly one writes the secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    except FileExistsError:
        pass
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            return value
    raise ConfigError(f"{path} is empty; delete it and start again.")


def load(overrides: dict | None = None) -> dict:
    overrides = overrides or {}
    environment = overrides.get("ROTA_ENV", os.environ.get("ROTA_ENV", "development"))
    config = {
        "ROTA_ENV": environment,
        "MONGODB_URI": os.environ.get("MONGODB_URI", "mongomock://localhost/rota"),
        "ROTA_CREATE_INDEXES": os.environ.get("ROTA_CREATE_INDEXES", "1") == "1",
        # In-process mongomock starts empty in every process: load the demo so there is a login.
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(
            minutes=int(os.environ.get("ROTA_ACCESS_TOKEN_MINUTES", "15"))),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=30),
        "JWT_ERROR_MESSAGE_KEY": "message",
        "PROPAGATE_EXCEPTIONS": False,
        "API_TITLE": "Rota",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",
        "API_SPEC_OPTIONS": {
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearerAuth": []}],
            "info": {"description": "Timetables, weekly groups, tracks and team rosters for "
                                    "multi-school HR portals."},
        },
    }
    config.update(overrides)
    if "JWT_SECRET_KEY" not in config:
        config["JWT_SECRET_KEY"] = jwt_secret(environment)
    return config
