#!/bin/sh
# The compose stack's one-shot init (service `airflow-init`); every step is idempotent:
# the PostgreSQL databases and the S3 bucket, `airflow db migrate`, then each project's Feast
# repo applied to the SQL registry (what `kaizen up` does before it starts the feature server).
set -eu
python /app/docker/prepare_stores.py
airflow db migrate
for declaration in /app/projects/*/kaizen.yaml; do  # every project's repo: the API serves all
    kaizen -p "$(basename "$(dirname "$declaration")")" apply
done
