"""A container's healthcheck: GET `url`; healthy on 2xx (or an `--ok-status`), and with
`--field`, when that key of the JSON reports `"status": "healthy"` (Airflow's monitor lists
the scheduler, dag-processor and triggerer by their heartbeats). Exit 0 healthy, 1 not.
The same rule as `kaizen status` (kaizen.ops.health), without importing Kaizen."""

import argparse
import json
import sys
import urllib.error
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--field")
parser.add_argument("--ok-status", type=int, action="append", default=[])
args = parser.parse_args()
try:
    with urllib.request.urlopen(args.url, timeout=4) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
except OSError as exc:
    sys.exit(f"unreachable: {exc}")
if status in args.ok_status:
    sys.exit(0)
if not 200 <= status < 300:
    sys.exit(f"HTTP {status}")
if args.field:
    state = (json.loads(body).get(args.field) or {}).get("status")
    if state != "healthy":
        sys.exit(f"{args.field}: {state}")
