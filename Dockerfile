# The one Kaizen image. docker-compose.yml runs every platform process from it: Airflow's
# api-server, scheduler, dag-processor and triggerer (and the one-shot init), MLflow, the Feast
# feature server and the prediction API. No secret is in it: they all come from the
# environment at run time (.env through docker compose), see docker/entrypoint.sh.
FROM python:3.11-slim

# Java for the stack profile's Spark engine (PySpark 4 needs 17 or newer); tini as PID 1 reaps
# the task processes LocalExecutor forks and forwards signals.
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*

# The stack profile; the state the processes write goes under /var/lib/kaizen, not into the code.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    GX_ANALYTICS_ENABLED=false \
    KAIZEN_HOME=/app \
    KAIZEN_PROFILE=stack \
    KAIZEN_AIRFLOW_HOME=/var/lib/kaizen/airflow \
    AIRFLOW_HOME=/var/lib/kaizen/airflow \
    KAIZEN_RUNTIME_DIR=/var/lib/kaizen/runtime \
    KAIZEN_FEAST_DATA_DIR=/var/lib/kaizen/{project}/feast \
    KAIZEN_GX_UNCOMMITTED_DIR=/var/lib/kaizen/{project}/gx

WORKDIR /app
RUN python -m venv /opt/venv && /opt/venv/bin/python -m pip install --no-cache-dir -q -U pip uv

# The same install as `make install` (the lock in constraints.txt), without the dev extra.
COPY . /app
RUN uv pip install --no-cache --compile-bytecode -c constraints.txt -e . \
    && chmod 0755 /app/docker/*.sh /app/docker/*.py

# A non-root user owns only the state directories (the compose volumes mount over them and
# take their ownership from here); the code stays root's and read-only to it.
RUN useradd --create-home --uid 10001 --user-group kaizen \
    && mkdir -p /var/lib/kaizen/airflow/logs /var/lib/kaizen/runtime /var/lib/kaizen/feast \
       /var/lib/kaizen/gx /app/data \
    && chown -R kaizen:kaizen /var/lib/kaizen /app/data
USER kaizen

ENTRYPOINT ["tini", "--", "/app/docker/entrypoint.sh"]
CMD ["kaizen", "--help"]
