"""`status --format prometheus`: the fleet's dates as node_exporter textfile-collector metrics.

node_exporter's textfile collector reads `*.prom` files in the Prometheus text format from the directory given by
`--collector.textfile.directory`; a file must be replaced atomically ("write to a temporary file and rename", the
node_exporter README, "Textfile Collector"), which `write_atomic` does. The metrics are gauges holding Unix times
in seconds, as Prometheus names them (`_timestamp_seconds`, prometheus.io/docs/practices/naming), so that alert
rules compare them with `time()` (monitoring/intrexx-exchange.rules.yml). Labels: stack, environment, portal,
connector; no secret and no secret id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .status import EventKind, Fleet

PREFIX = "intrexx_exchange"
LABELS = ("stack", "environment", "portal", "connector")


def unix_time(day: date) -> int:
    """Midnight UTC of `day`: how the outputs write a date (components/contract.py `timestamp`)."""
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())


def fleet_metrics(fleet: Fleet, now: datetime) -> bytes:
    registry = CollectorRegistry()
    expiry = Gauge(
        f"{PREFIX}_secret_expiry_timestamp_seconds",
        "When a client secret of the portal's registration expires (secret: current = published, previous = the "
        "one Intrexx may still hold).",
        (*LABELS, "secret"),
        registry=registry,
    )
    rotation = Gauge(
        f"{PREFIX}_secret_rotation_timestamp_seconds",
        "When the next secret rotation is due (pulumi up, then hand the new secret to Intrexx).",
        LABELS,
        registry=registry,
    )
    tokens = Gauge(
        f"{PREFIX}_refresh_tokens_due_timestamp_seconds",
        "When Intrexx's MS365 refresh tokens must be requested again (exchange portals with refreshTokensRequestedOn).",
        LABELS,
        registry=registry,
    )
    tokens_recorded = Gauge(
        f"{PREFIX}_refresh_tokens_recorded",
        "1 when an exchange portal records refreshTokensRequestedOn, 0 when the re-request day is unknown.",
        LABELS,
        registry=registry,
    )
    ews = Gauge(
        f"{PREFIX}_ews_retirement_timestamp_seconds",
        "When EWS in Exchange Online is switched off (exchange portals).",
        LABELS,
        registry=registry,
    )
    generated = Gauge(
        f"{PREFIX}_status_generated_timestamp_seconds",
        "When intrexx-connector status wrote these metrics.",
        registry=registry,
    )
    generated.set(int(now.timestamp()))
    for entry in fleet.entries:
        portal = entry.portal
        labels = (entry.stack, portal.environment, portal.name, portal.connector.value)
        expiry.labels(*labels, "current").set(unix_time(portal.secret_expires_at))
        expiry.labels(*labels, "previous").set(unix_time(portal.previous_secret_expires_at))
        rotation.labels(*labels).set(unix_time(portal.secret_rotates_at))
        for milestone in entry.milestones:
            if milestone.kind is EventKind.REFRESH_TOKENS:
                tokens.labels(*labels).set(unix_time(milestone.day))
            elif milestone.kind is EventKind.EWS_RETIREMENT:
                ews.labels(*labels).set(unix_time(milestone.day))
        if portal.uses_ews:
            tokens_recorded.labels(*labels).set(1 if portal.refresh_tokens_requested_on else 0)
    return generate_latest(registry)
