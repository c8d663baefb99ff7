"""The prediction API: the champion model on the online features of its own feature service.

* `app`: the FastAPI app behind a bearer token (`/predict`, `/predict/batch`, `/metadata`,
  `/metrics`; `/health` is open) and `create_app`, the factory uvicorn workers call;
* `predictor`: one request's path, without HTTP: route, read features, score, decide, log;
* `deployment`: the champion and challenger loaded from their MLflow aliases, re-resolved by a
  background thread and swapped atomically (requests in flight finish on the old model);
* `routing`: canary (a stable share of customers goes to the challenger) or shadow;
* `predictions`: the buffered prediction log in the lake, and `read_predictions`;
* `metrics`: Prometheus counters and the latency histogram; `schemas`: request and response
  bodies; `auth`: the token; `server`: `kaizen serve` (uvicorn, one or more workers).
"""
