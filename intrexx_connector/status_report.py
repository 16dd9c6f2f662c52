"""`status --format html`: one self-contained page over the fleet, most urgent first.

The page is rendered by Jinja2 from `templates/status-report.html.j2` with autoescaping on for every value
(jinja.palletsprojects.com/en/stable/api/#autoescaping), so that a portal name, an environment or a step from an
outputs file is text on the page, never markup. It loads nothing: the CSS is inline, there is no script, image or
link to another resource, and a Content-Security-Policy meta element (default-src 'none'; style-src
'unsafe-inline') tells the browser so. Dates are ISO 8601 in `<time datetime>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from .status import EventKind, Fleet, FleetEntry, Level, Milestone

TEMPLATE = "status-report.html.j2"
LABELS = {
    EventKind.ROTATION: "Rotation",
    EventKind.SECRET_EXPIRY: "Secret expires",
    EventKind.PREVIOUS_SECRET_EXPIRY: "Previous secret expires",
    EventKind.REFRESH_TOKENS: "Refresh tokens due",
    EventKind.EWS_ALLOW_LIST: "EWS allow list required",
    EventKind.EWS_RETIREMENT: "EWS switched off",
}


@dataclass(frozen=True)
class Row:
    entry: FleetEntry
    events: list[tuple[Milestone, str, int]]  # milestone, label, days left


def fleet_report(fleet: Fleet, now: datetime) -> str:
    environment = Environment(
        loader=PackageLoader("intrexx_connector", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    today = fleet.today
    rows = [
        Row(entry, [(event, LABELS[event.kind], (event.day - today).days) for event in entry.milestones])
        for entry in fleet.entries
    ]
    counts = {level.value: fleet.count(level) for level in Level}
    return environment.get_template(TEMPLATE).render(
        fleet=fleet, rows=rows, counts=counts, generated=now.replace(microsecond=0).isoformat()
    )
