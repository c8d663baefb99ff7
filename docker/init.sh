#!/bin/sh
# The compose stack's one-shot init (service `airflow-init`); every step is idempotent:
# the PostgreSQL databases and the S3 bucket, `airflow db migrate`, then the Feast repo applied
# to the SQL registry (what `kaizen up` does before it starts the feature server).
set -eu
python /app/docker/prepare_stores.py
airflow db migrate
kaizen apply
