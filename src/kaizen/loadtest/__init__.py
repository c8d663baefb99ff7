"""Load tests of the prediction API: a locust scenario run headless as a subprocess.

Nothing here imports locust: its gevent monkey-patching must never reach the Airflow or
pytest process, so `locustfile.py` only ever runs inside the `locust` command.
"""
