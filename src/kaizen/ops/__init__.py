"""The local platform: `kaizen up`, `kaizen down`, `kaizen status`.

One supervisor (`supervise`, detached, its pid under the runtime dir) runs every long-lived
process on 127.0.0.1 and restarts one that crashes: Airflow's api-server, scheduler,
dag-processor and triggerer, the MLflow tracking server with its basic-auth app, the feature
server and the prediction API. Each process is one line in `components.components()`; admin
passwords are generated into `.env` on the first start.

- `layout`: where the runtime files live (pids, plan, state, logs, secret files, MLflow stores)
- `secrets`: generate the admin passwords into `.env` and write the files the services read
- `components`: the process registry, written to the supervisor's plan (`components.json`)
- `health`: HTTP health and process liveness, and the status table
- `supervise`: the supervisor itself: start order, restarts with backoff, giving up, stop
- `supervisor`: start, stop and inspect the supervisor and its process tree
"""
