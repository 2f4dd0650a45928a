# regfit — one image for the API (`regfit serve`), the Celery worker (`regfit worker`)
# and the one-shot migration (`regfit migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md VERSION ./
RUN mkdir -p service && touch service/__init__.py \
    && pip install . \
    && pip uninstall -y regfit

COPY alembic.ini ./
COPY migrations ./migrations
COPY service ./service
# The client distribution owns the `regfit` command; the server adds serve/migrate/worker/keys.
COPY clients/python ./clients/python
# Editable install: `regfit` finds alembic.ini and migrations/ beside the package.
RUN pip install --no-deps -e . \
    && pip install ./clients/python \
    && useradd --create-home --uid 10001 regfit \
    && mkdir -p /data \
    && chown regfit:regfit /data

# Embedded defaults for a container: SQLite and the Parquet files on the /data volume,
# listening on all interfaces (so an API key or REGFIT_AUTH=off must be given).
ENV REGFIT_DATABASE_URL=sqlite:////data/regfit.db \
    REGFIT_DATA_DIR=/data/files \
    REGFIT_HOST=0.0.0.0 \
    REGFIT_PORT=8000

VOLUME ["/data"]
USER regfit
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["regfit", "serve"]
