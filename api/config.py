"""Settings from the environment, read and checked once at start.

Every variable is checked before anything starts (`rota serve`, the gunicorn master, and
`create_app` in each worker): a wrong value is a `ConfigError` whose one-line message names the
variable, what it must be and what it was.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")
URI_SCHEMES = ("mongodb://", "mongodb+srv://", "mongomock://")
MAX_TOKEN_MINUTES = 7 * 24 * 60
MIN_SECRET_LENGTH = 32  # HS256 wants a key of at least 256 bits
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FLAGS = {"1": True, "0": False}


class ConfigError(RuntimeError):
    pass


def var_dir() -> Path:
    return Path(os.environ.get("ROTA_VAR_DIR", ROOT / "var"))


def _invalid(name: str, must: str, value: str) -> ConfigError:
    return ConfigError(f"{name} must be {must}, not {value!r}.")


def rota_env() -> str:
    value = os.environ.get("ROTA_ENV", "development")
    if value not in ENVIRONMENTS:
        raise _invalid("ROTA_ENV", "one of " + ", ".join(ENVIRONMENTS), value)
    return value


def access_token_minutes() -> int:
    value = os.environ.get("ROTA_ACCESS_TOKEN_MINUTES", "15")
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_TOKEN_MINUTES:
        raise _invalid("ROTA_ACCESS_TOKEN_MINUTES",
                       f"a whole number of minutes from 1 to {MAX_TOKEN_MINUTES}", value)
    return int(value)


def create_indexes() -> bool:
    value = os.environ.get("ROTA_CREATE_INDEXES", "1")
    if value not in FLAGS:
        raise _invalid("ROTA_CREATE_INDEXES", "1 or 0", value)
    return FLAGS[value]


def mongodb_uri() -> str:
    value = os.environ.get("MONGODB_URI", "mongomock://localhost/rota")
    if not value.startswith(URI_SCHEMES):
        raise ConfigError(f"MONGODB_URI must start with {', '.join(URI_SCHEMES)}.")
    return value


def metrics_token() -> str | None:
    value = os.environ.get("ROTA_METRICS_TOKEN")
    if value is not None and (len(value) < 16 or not value.isprintable() or " " in value):
        raise ConfigError("ROTA_METRICS_TOKEN must be at least 16 printable characters "
                          "without spaces (or unset).")
    return value


def log_level() -> str:
    value = os.environ.get("ROTA_LOG_LEVEL", "INFO")
    if value.upper() not in LOG_LEVELS:
        raise _invalid("ROTA_LOG_LEVEL", "one of " + ", ".join(LOG_LEVELS), value)
    return value.upper()


def api_key_rate_limit() -> int:
    value = os.environ.get("ROTA_API_KEY_RATE_LIMIT", "600")
    if not value.strip().isdigit() or int(value) < 1:
        raise _invalid("ROTA_API_KEY_RATE_LIMIT", "a whole number of requests per minute, 1 or "
                       "more", value)
    return int(value)


def calendar_feed_rate_limit() -> int:
    """Reads of one calendar feed URL a minute (calendar apps poll every few minutes)."""
    value = os.environ.get("ROTA_CALENDAR_FEED_RATE_LIMIT", "60")
    if not value.strip().isdigit() or int(value) < 1:
        raise _invalid("ROTA_CALENDAR_FEED_RATE_LIMIT", "a whole number of requests per "
                       "minute, 1 or more", value)
    return int(value)


def cors_origins() -> list[str]:
    """Origins allowed to call the API from a browser; none by default (no CORS headers)."""
    value = os.environ.get("ROTA_CORS_ORIGINS", "")
    origins = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
    for origin in origins:
        if origin != "*" and not origin.startswith(("https://", "http://")):
            raise _invalid("ROTA_CORS_ORIGINS", "comma-separated origins such as "
                           "https://portal.example.com", value)
    return origins


def trusted_proxies() -> int:
    """How many reverse proxies in front set X-Forwarded-For (0: none, use the peer)."""
    value = os.environ.get("ROTA_TRUSTED_PROXIES", "0")
    if not value.strip().isdigit() or int(value) > 5:
        raise _invalid("ROTA_TRUSTED_PROXIES", "a number of proxies from 0 to 5", value)
    return int(value)


def check_var_dir() -> Path:
    path = var_dir()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"ROTA_VAR_DIR must be a directory; {str(path)!r} is a file.")
    return path


def validate() -> None:
    """Check every variable at once, before anything starts: ConfigError for the first wrong
    one. The JWT secret is checked, not generated (the workers generate it)."""
    env = rota_env()
    access_token_minutes()
    create_indexes()
    mongodb_uri()
    metrics_token()
    log_level()
    api_key_rate_limit()
    calendar_feed_rate_limit()
    cors_origins()
    trusted_proxies()
    integrations()
    check_var_dir()
    _checked_secret(env)


def integrations() -> None:
    """The import job and webhook variables, read where they are used (service/)."""
    from service import import_jobs, runners, webhook_delivery

    try:
        import_jobs.max_upload_bytes()
        runners.enabled(None)
        webhook_delivery.check_settings()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def jwt_secret(environment: str) -> str:
    """`ROTA_JWT_SECRET`; outside production one is generated once and kept under var/."""
    secret = _checked_secret(environment)
    if secret:
        return secret
    path = check_var_dir() / "jwt_secret"
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


def _checked_secret(environment: str) -> str | None:
    secret = os.environ.get("ROTA_JWT_SECRET")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"ROTA_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                          f"(it has {len(secret)}).")
    if not secret and environment == "production":
        raise ConfigError("ROTA_JWT_SECRET must be set in production; refusing to start.")
    return secret


def load(overrides: dict | None = None) -> dict:
    overrides = overrides or {}
    environment = overrides.get("ROTA_ENV") or rota_env()
    config = {
        "ROTA_ENV": environment,
        "MONGODB_URI": mongodb_uri(),
        "ROTA_CREATE_INDEXES": create_indexes(),
        "ROTA_METRICS_TOKEN": metrics_token(),
        "ROTA_LOG_LEVEL": log_level(),
        "ROTA_API_KEY_RATE_LIMIT": api_key_rate_limit(),
        "ROTA_CALENDAR_FEED_RATE_LIMIT": calendar_feed_rate_limit(),
        "ROTA_CORS_ORIGINS": cors_origins(),
        "ROTA_TRUSTED_PROXIES": trusted_proxies(),
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=access_token_minutes()),
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
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "An access token (JWT) or a service account's "
                                              "API key (rota_...)."}}},
            "security": [{"bearerAuth": []}],
            "info": {"description": "Timetables, weekly groups, tracks and team rosters for "
                                    "multi-school HR portals."},
        },
    }
    config.update(overrides)
    if "JWT_SECRET_KEY" not in config:
        config["JWT_SECRET_KEY"] = jwt_secret(environment)
    return config
