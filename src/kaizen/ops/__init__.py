"""The local platform: `kaizen up`, `kaizen down`, `kaizen status`.

One supervisor (honcho, detached, its pid under the runtime dir) runs every long-lived
process on 127.0.0.1: Airflow's api-server, scheduler, dag-processor and triggerer, and the
MLflow tracking server with its basic-auth app. Each process is one line in
`components.components()`; admin passwords are generated into `.env` on the first start.

- `layout`: where the runtime files live (pid, Procfile, logs, secret files, MLflow stores)
- `secrets`: generate the admin passwords into `.env` and write the files the services read
- `components`: the process registry that becomes the Procfile
- `health`: HTTP health and process liveness, and the status table
- `supervisor`: start, stop and inspect the supervisor and its process tree
"""
