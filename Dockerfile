# Rota API: slim, non-root, gunicorn. Point MONGODB_URI at MongoDB (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ROTA_ENV=production \
    ROTA_VAR_DIR=/tmp/rota \
    PROMETHEUS_MULTIPROC_DIR=/tmp/rota/metrics

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY api ./api
COPY service ./service
COPY documents ./documents
COPY scripts ./scripts
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 rota

USER rota
EXPOSE 8000
# Indexes are created by each worker at start (idempotent on MongoDB). JSON logs, the
# configuration checked in the master, /metrics over every worker: scripts/gunicorn_config.py.
CMD ["gunicorn", "--config", "python:scripts.gunicorn_config", "--bind", "0.0.0.0:8000", \
     "--workers", "4", "--timeout", "60", "api:create_app()"]
