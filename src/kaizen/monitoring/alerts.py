"""Breaches and their alerts: to the log and a webhook, once per breach episode.

A breach has a stable key (`data_drift.v3`, `positive_rate`, `freshness.<view>`) and
an episode that starts on the first day it is seen and lasts while every following run
sees it again. An alert is sent when an episode starts, never again for that episode: the
claim is an immutable record `records/alerts/<key>-<since>` created before sending, so a
rerun of the day, a retry or a second monitor process cannot alert twice. When the breach
clears and comes back, that is a new episode and a new alert.

Delivery is best effort: a webhook that is down, slow (short timeout) or answers an error
is logged, and monitoring goes on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kaizen.config import Settings
from kaizen.logs import get_logger
from kaizen.records import RecordExists, RecordStore

log = get_logger(__name__)
KIND = "alerts"


@dataclass
class Breach:
    key: str
    kind: str  # data_drift, prediction_drift, positive_rate, quality, skew, freshness
    message: str
    actionable: bool  # may request a retrain (drift, positive rate); the others need a person
    since: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def episodes(breaches: list[Breach], previous: dict[str, Any] | None, ds: str) -> list[Breach]:
    """Set each breach's `since`: carried from the previous run while it persists."""
    before = (previous or {}).get("breaches") or {}
    for breach in breaches:
        carried = before.get(breach.key, {}).get("since")
        breach.since = carried if carried and carried < ds else ds
    return breaches


class Notifier:
    """The log always; the webhook when KAIZEN_ALERT_WEBHOOK_URL is set."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.alert_webhook_url
        self.url = secret.get_secret_value() if secret else ""
        self.timeout = settings.alert_webhook_timeout_s

    def send(self, alert: dict[str, Any]) -> bool:
        log.warning("ALERT %s: %s", alert["key"], alert["message"])
        if not self.url:
            return False
        import httpx

        try:
            response = httpx.post(self.url, json=alert, timeout=self.timeout)
            response.raise_for_status()
        except Exception as exc:  # delivery is best effort: never fail monitoring
            log.error("alert %s not delivered to the webhook: %s", alert["key"], exc)
            return False
        return True


def notify(
    settings: Settings, breaches: list[Breach], ds: str, notifier: Notifier | None = None
) -> list[dict[str, Any]]:
    """Alert every breach whose episode has not been alerted yet; returns the alerts sent."""
    store = RecordStore.from_settings(settings)
    notifier = notifier or Notifier(settings)
    sent = []
    for breach in breaches:
        alert = {
            "key": breach.key,
            "kind": breach.kind,
            "since": breach.since,
            "ds": ds,
            "message": breach.message,
            "actionable": breach.actionable,
            "details": breach.details,
        }
        try:
            store.put(KIND, f"{breach.key}-{breach.since}", alert)
        except RecordExists:
            log.info("%s: still breached since %s (alerted then)", breach.key, breach.since)
            continue
        alert["delivered"] = notifier.send(alert)
        sent.append(alert)
    return sent
