"""The prediction API: each project's champion model on the online features of its own
feature service, several projects in one process.

* `app`: the FastAPI app behind a bearer token (per project `/<project>/predict`,
  `/<project>/predict/batch`, `/<project>/explain`, `/<project>/metadata`; the open
  `/<project>/health` and `/health`; `/metrics`) and `create_app`, the factory uvicorn
  workers call;
* `predictor`: one request's path, without HTTP: route, read features, score, decide, log;
* `deployment`: the champion and challenger loaded from their MLflow aliases, re-resolved by a
  background thread and swapped atomically (requests in flight finish on the old model);
* `routing`: canary (a stable share of entities goes to the challenger) or shadow;
* `predictions`: the buffered prediction log in the project's lake, `log_schema` and
  `read_predictions`;
* `metrics`: Prometheus counters and the latency histogram, labelled by project; `schemas`:
  the project's request bodies (`request_model`) and the responses; `server`: `kaizen serve`
  (uvicorn, one or more workers); `traffic`: `kaizen traffic`, a day's requests replayed.
"""
