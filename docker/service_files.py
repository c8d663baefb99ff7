"""Write the secret files a container's services read, from the KAIZEN_* settings.

Only what this container has the password for: an Airflow container gets the passwords file,
the MLflow container its basic-auth config. The same functions `kaizen up` uses natively.
"""

from kaizen.config import get_settings
from kaizen.ops import secrets
from kaizen.ops.layout import Layout, mlflow_auth_database_uri

settings = get_settings()
layout = Layout.from_settings(settings)
airflow_pw = settings.airflow_admin_password
mlflow_pw = settings.mlflow_admin_password
if airflow_pw or mlflow_pw:
    layout.create()
if airflow_pw and airflow_pw.get_secret_value():
    secrets.write_airflow_passwords(
        layout.airflow_passwords, settings.airflow_admin_username, airflow_pw.get_secret_value()
    )
if mlflow_pw and mlflow_pw.get_secret_value():
    secrets.write_mlflow_auth_config(
        layout.mlflow_auth_config,
        settings.mlflow_admin_username,
        mlflow_pw.get_secret_value(),
        mlflow_auth_database_uri(settings),
    )
