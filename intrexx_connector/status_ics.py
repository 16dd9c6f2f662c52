"""`status --format ics`: the fleet's milestones as an RFC 5545 calendar, written with the `icalendar` library.

Each milestone (intrexx_connector/status.py) is an all-day event (RFC 5545 3.6.1: DTSTART with VALUE=DATE and
DTEND the next day), transparent (it blocks no time), with a VALARM per `alarm_days` (ACTION:DISPLAY, a TRIGGER
relative to the start, RFC 5545 3.6.6 and 3.8.6.3), and its steps in DESCRIPTION. The UID is derived from the
stack, the portal, the event kind and the date (RFC 5545 3.8.4.7: "persistent, globally unique"), so a subscribed
calendar updates its events on every run instead of adding copies; DTSTAMP (3.8.7.2) is when the file was made.
No secret is in any event: the outputs it is made from are read without them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event

from .status import EventKind, Fleet, FleetEntry, Milestone

PRODID = "-//intrexx-exchange//status//EN"
UID_DOMAIN = "intrexx-exchange.status"
DEFAULT_ALARM_DAYS = (14, 3)
CATEGORIES = {
    EventKind.ROTATION: "Secret rotation",
    EventKind.SECRET_EXPIRY: "Secret expiry",
    EventKind.PREVIOUS_SECRET_EXPIRY: "Secret expiry",
    EventKind.REFRESH_TOKENS: "Refresh tokens",
    EventKind.EWS_ALLOW_LIST: "EWS",
    EventKind.EWS_RETIREMENT: "EWS",
}


def event_uid(stack: str, portal: str, milestone: Milestone) -> str:
    """Stable from run to run: the same stack, portal, kind and date give the same UID."""
    key = "\n".join((stack, portal, milestone.kind.value, milestone.day.isoformat()))
    return f"{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@{UID_DOMAIN}"


def fleet_calendar(fleet: Fleet, now: datetime, alarm_days: Sequence[int] = DEFAULT_ALARM_DAYS) -> bytes:
    """The calendar as bytes (CRLF line endings, folded lines, as icalendar writes RFC 5545)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "Intrexx connectors: " + ", ".join(fleet.stacks))
    for entry in sorted(fleet.entries, key=lambda e: (e.stack, e.portal.name)):
        for milestone in entry.milestones:
            calendar.add_component(_event(entry, milestone, now, alarm_days))
    return calendar.to_ical()


def _event(entry: FleetEntry, milestone: Milestone, now: datetime, alarm_days: Sequence[int]) -> Event:
    portal = entry.portal
    event = Event()
    event.add("uid", event_uid(entry.stack, portal.name, milestone))
    event.add("dtstamp", now)
    event.add("dtstart", milestone.day)
    event.add("dtend", milestone.day + timedelta(days=1))
    event.add("summary", f"[{entry.stack}] {portal.name}: {milestone.title}")
    event.add(
        "description",
        f"Stack {entry.stack}, portal {portal.name} ({portal.display_name}), connector {portal.connector.value}, "
        f"client id {portal.client_id}.\n\n{milestone.steps}",
    )
    event.add("categories", [CATEGORIES[milestone.kind]])
    event.add("transp", "TRANSPARENT")
    for days in sorted(set(alarm_days), reverse=True):
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"in {days} days: {entry.stack} / {portal.name}: {milestone.title}")
        alarm.add("trigger", timedelta(days=-days))
        event.add_component(alarm)
    return event
