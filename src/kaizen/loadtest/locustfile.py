"""A project's prediction API under realistic traffic: mostly one-row
POST /<project>/predict, some GET /<project>/health.

Run by `kaizen.loadtest.runner` as `locust -f <this file> --headless`, never imported: locust
monkey-patches the process with gevent. Configured by environment variables only:
KAIZEN_LOADTEST_TRAFFIC (a JSON list of request bodies), KAIZEN_LOADTEST_TOKEN (the API's
bearer token), KAIZEN_LOADTEST_PROJECT (the routes' prefix), KAIZEN_LOADTEST_HEALTH_SHARE and
KAIZEN_LOADTEST_WAIT_MAX.
"""

import itertools
import json
import os
import random
from pathlib import Path

from locust import FastHttpUser, between, task

BODIES = json.loads(Path(os.environ["KAIZEN_LOADTEST_TRAFFIC"]).read_text(encoding="utf-8"))
HEALTH_SHARE = float(os.environ.get("KAIZEN_LOADTEST_HEALTH_SHARE", "0.05"))
PER_MILLE_HEALTH = max(0, round(HEALTH_SHARE * 1000))
PROJECT = os.environ["KAIZEN_LOADTEST_PROJECT"]
PREDICT, HEALTH = f"/{PROJECT}/predict", f"/{PROJECT}/health"


class PredictionClient(FastHttpUser):
    wait_time = between(0.0, float(os.environ.get("KAIZEN_LOADTEST_WAIT_MAX", "0.1")))

    def on_start(self) -> None:
        # Each user walks the shared bodies from its own offset: no two users in lockstep.
        start = random.randrange(len(BODIES))
        self.bodies = itertools.cycle(BODIES[start:] + BODIES[:start])
        self.auth = {"Authorization": f"Bearer {os.environ['KAIZEN_LOADTEST_TOKEN']}"}

    @task(1000 - PER_MILLE_HEALTH)
    def predict(self) -> None:
        with self.client.post(
            PREDICT, json=next(self.bodies), headers=self.auth, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    if PER_MILLE_HEALTH:

        @task(PER_MILLE_HEALTH)
        def health(self) -> None:
            self.client.get(HEALTH)
