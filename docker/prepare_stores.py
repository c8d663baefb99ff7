"""Create what the stack's services expect to exist: their PostgreSQL databases and the bucket."""

import os

from kaizen.config import get_settings
from kaizen.ops.layout import mlflow_auth_database_uri, mlflow_backend_store_uri
from kaizen.postgres import ensure_database

settings = get_settings()
for url in (
    os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""),
    settings.postgres_url,  # the Feast SQL registry
    mlflow_backend_store_uri(settings),
    mlflow_auth_database_uri(settings),
):
    if url.startswith("postgresql"):
        ensure_database(url)

buckets = {
    url.split("://", 1)[1].split("/", 1)[0]
    for url in (settings.raw_root, settings.lake_root, settings.mlflow_artifacts_destination)
    if url.startswith("s3://")
}
if buckets:
    import boto3

    options = settings.storage_options("s3://")
    s3 = boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"].get("endpoint_url"),
        region_name=settings.s3_region,
        aws_access_key_id=options.get("key"),
        aws_secret_access_key=options.get("secret"),
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in sorted(buckets - existing):
        s3.create_bucket(Bucket=bucket)
        print(f"created bucket {bucket}")
