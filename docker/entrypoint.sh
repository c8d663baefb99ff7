#!/bin/sh
# The image's entrypoint. Like `kaizen up` does from .env, derive the files the services read
# from the secrets in the environment (Airflow's passwords file, MLflow's basic-auth config:
# 0600 in a 0700 directory, never logged), then run the command.
set -eu
python /app/docker/service_files.py
# Per container start and never stored: it only signs MLflow's CSRF tokens and session cookies.
if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
exec "$@"
