# Provided as-is: no Docker engine runs on the project's own machines, so this
# image is kept simple and is not exercised by CI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DCIBRIDGE_HOST=0.0.0.0 \
    DCIBRIDGE_PORT=8000 \
    DCIBRIDGE_DATABASE_URL=sqlite+aiosqlite:////data/dcibridge.db

WORKDIR /srv/dcibridge
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /srv/dcibridge dcibridge \
    && mkdir /data && chown dcibridge /data

USER dcibridge
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["dcibridge", "serve"]
