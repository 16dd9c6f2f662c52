"""Per-portal status by date, for one stack or a fleet: secret expiry and rotation, EWS retirement, the Intrexx
refresh-token re-request.

`portal_status` judges one portal as of a day; `milestones` lists the dated events of a portal (what a calendar,
metrics or a report show), each with the exact steps that handle it; `fleet_status` orders every portal of
several stacks by what is due first. The formats (status_ics, status_metrics, status_report, notify) read these
records only. Every command shown to people is built from values checked here or by the output contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from components.contract import PortalOutput
from components.ews import EWS_BLOCKED_FROM, EWS_SHUTDOWN, ews_state
from components.facts import is_guid
from components.refresh_tokens import VALID_MONTHS, refresh_tokens_due

# "Request MS365 Refresh Token" is the Exchange connector's per-user sign-in. Intrexx (help.intrexx.com/intrexx/
# steady/en-us/Content/OH/integration-connector-exchange-ms365-refresh-token.html): "The refresh token is stored in
# the MediaGateway. It is valid for three months. The token must then be manually requested again."
REFRESH_TOKEN_STEPS = (
    "in the Portal Manager: Integration -> Consume data -> Connector for Microsoft Exchange -> the data source -> "
    'Edit -> "Exchange account" tab -> "Request MS365 Refresh Token", for the data source\'s user and for every '
    "other user the applications and processes use; then record the day as `refreshTokensRequestedOn: YYYY-MM-DD` "
    "in the portal's entry of the stack file and run `pulumi up`"
)
REFRESH_TOKEN_REMINDER = (
    "Intrexx keeps each mailbox user's refresh token for three months: request it again with "
    '"Request MS365 Refresh Token" in the data source every three months'
)
# A Pulumi stack name as `pulumi stack` accepts it ([org/][project/]stack: letters, digits, '-', '_', '.'): it
# goes into the commands status prints, so nothing else may.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){0,2}")
UNKNOWN_STACK = "<stack>"


class StatusKey:
    """Keys of `status --json`, one object per portal."""

    STACK = "stack"
    PORTAL = "portal"
    ENVIRONMENT = "environment"
    CONNECTOR = "connector"
    SECRET_KEY_ID = "secretKeyId"
    SECRET_EXPIRES_AT = "secretExpiresAt"
    DAYS_LEFT = "daysLeft"
    SECRET_ROTATES_AT = "secretRotatesAt"
    PREVIOUS_SECRET_KEY_ID = "previousSecretKeyId"
    PREVIOUS_SECRET_STOPS = "previousSecretStops"
    HAND_MADE_SECRET_KEY_IDS = "handMadeSecretKeyIds"
    EXPIRING = "expiring"
    DUE = "due"
    NEXT_DUE = "nextDue"
    LEVEL = "level"
    EWS = "ews"
    REFRESH_TOKEN_REMINDER = "refreshTokenReminder"
    REFRESH_TOKENS_REQUESTED_ON = "refreshTokensRequestedOn"
    REFRESH_TOKENS_DUE = "refreshTokensDue"
    MESSAGES = "messages"
    MILESTONES = "milestones"


class Level(StrEnum):
    """How urgent a portal is, most urgent first."""

    EXPIRED = "expired"  # something stopped working: a secret, Intrexx's refresh tokens, EWS
    DUE = "due"  # something is due within the warning window, or a rotation was missed
    OK = "ok"


class EventKind(StrEnum):
    """The dated events of a portal; the values name them in UIDs, metrics and JSON."""

    ROTATION = "rotation"  # pulumi up makes the next secret; hand it to Intrexx before the previous one expires
    SECRET_EXPIRY = "secret-expiry"  # the published secret stops working
    PREVIOUS_SECRET_EXPIRY = "previous-secret-expiry"  # the secret published before stops working
    REFRESH_TOKENS = "refresh-tokens"  # Intrexx's MS365 refresh tokens must be requested again
    EWS_ALLOW_LIST = "ews-allow-list"  # EWS blocked unless allow-listed
    EWS_RETIREMENT = "ews-retirement"  # EWS switched off for good


@dataclass(frozen=True)
class Milestone:
    kind: EventKind
    day: date
    title: str  # one line
    steps: str  # what to do, with the exact commands

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "date": self.day.isoformat(), "title": self.title, "steps": self.steps}


@dataclass(frozen=True)
class PortalStatus:
    name: str
    secret_key_id: str
    secret_expires_at: date
    days_left: int
    rotates_at: date
    previous_secret_key_id: str
    previous_secret_stops: date
    hand_made_secret_key_ids: tuple[str, ...]
    expiring: bool
    ews: str | None
    refresh_token_reminder: str | None
    messages: list[str] = field(default_factory=list)
    refresh_tokens_requested_on: date | None = None
    refresh_tokens_due: date | None = None
    due: bool = False  # something is due within the warning window: status exits 1

    def as_dict(self) -> dict:
        return {
            StatusKey.PORTAL: self.name,
            StatusKey.SECRET_KEY_ID: self.secret_key_id,
            StatusKey.SECRET_EXPIRES_AT: self.secret_expires_at.isoformat(),
            StatusKey.DAYS_LEFT: self.days_left,
            StatusKey.SECRET_ROTATES_AT: self.rotates_at.isoformat(),
            StatusKey.PREVIOUS_SECRET_KEY_ID: self.previous_secret_key_id,
            StatusKey.PREVIOUS_SECRET_STOPS: self.previous_secret_stops.isoformat(),
            StatusKey.HAND_MADE_SECRET_KEY_IDS: list(self.hand_made_secret_key_ids),
            StatusKey.EXPIRING: self.expiring,
            StatusKey.DUE: self.due,
            StatusKey.EWS: self.ews,
            StatusKey.REFRESH_TOKEN_REMINDER: self.refresh_token_reminder,
            StatusKey.REFRESH_TOKENS_REQUESTED_ON: _iso(self.refresh_tokens_requested_on),
            StatusKey.REFRESH_TOKENS_DUE: _iso(self.refresh_tokens_due),
            StatusKey.MESSAGES: list(self.messages),
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def is_stack_name(text: str) -> bool:
    """A Pulumi stack name, and one that names no folder above `build/` (`..`) when it becomes a path."""
    return STACK_NAME.fullmatch(text) is not None and not any(part in (".", "..") for part in text.split("/"))


def stack_label(stack: str | None) -> str:
    """The stack name as it may appear in a printed command; `<stack>` when unknown or not a stack name."""
    return stack if stack and is_stack_name(stack) else UNKNOWN_STACK


def handover_steps(portal: PortalOutput, stack: str) -> str:
    """The exact commands that hand a portal's published secret to Intrexx."""
    stack = stack_label(stack)
    where = (
        "the Exchange data source's OAuth2 settings"
        if portal.uses_ews
        else "the Microsoft 365 connector's registration"
    )
    steps = (
        f"run `python -m intrexx_connector render --stack {stack}` and enter the client secret from "
        f"build/{stack}/{portal.name}/{portal.connector.value}-connector.json in {where} in the Portal Manager"
    )
    if portal.sign_in:
        steps += (
            f", then `python -m intrexx_connector apply --stack {stack} --portal {portal.name} --portal-dir "
            "<portal directory>` and restart the portal server (om.cfg holds the secret too)"
        )
    return steps


def renew_steps(portal: PortalOutput, stack: str) -> str:
    return (
        f"run `pulumi up --stack {stack_label(stack)}` (it rotates the secrets), then {handover_steps(portal, stack)}"
    )


def portal_status(portal: PortalOutput, today: date, warn_days: int, stack: str = UNKNOWN_STACK) -> PortalStatus:
    expires_at, rotates_at = portal.secret_expires_at, portal.secret_rotates_at
    previous_stops = portal.previous_secret_expires_at
    days_left = (expires_at - today).days
    expiring = days_left <= warn_days
    handover = handover_steps(portal, stack)
    renew = renew_steps(portal, stack)
    messages = []
    if days_left <= 0:
        messages.append(f"the client secret expired on {expires_at.isoformat()} (Entra answers AADSTS7000222): {renew}")
    elif expiring:
        messages.append(
            f"the client secret expires on {expires_at.isoformat()}, in {days_left} days (warning "
            f"within {warn_days} days): {renew}"
        )
    if today >= rotates_at and days_left > 0:
        messages.append(f"secret rotation due since {rotates_at.isoformat()}: {renew}")
    previous_days = (previous_stops - today).days
    if 0 < previous_days <= warn_days:
        messages.append(
            f"the previous secret ({portal.previous_secret_key_id}) stops working on {previous_stops.isoformat()}, "
            f"in {previous_days} days: if Intrexx still holds it, {handover}"
        )
    hand_made = tuple(portal.hand_made_secret_key_ids or ())
    messages += _hand_made_messages(portal, hand_made)
    ews = ews_status(today, portal.client_id) if portal.uses_ews else None
    if ews:
        messages.append(ews)
    due = expiring or today >= rotates_at  # a missed rotation is a step people owe, not the pipeline
    if portal.uses_ews and (EWS_SHUTDOWN - today).days <= warn_days:
        due = True
    requested_on = portal.refresh_tokens_requested_on if portal.uses_ews else None
    tokens_due = refresh_tokens_due(requested_on) if requested_on else None
    reminder = None
    if portal.uses_ews:
        reminder = REFRESH_TOKEN_REMINDER
        if tokens_due is None:
            messages.append(
                "no refreshTokensRequestedOn on record: Intrexx's MS365 refresh tokens last three months, so the "
                "day of the next re-request is unknown; once they are requested, record the day as "
                "`refreshTokensRequestedOn: YYYY-MM-DD` in the portal's entry and run `pulumi up`"
            )
        else:
            tokens_days = (tokens_due - today).days
            if tokens_days <= warn_days:
                due = True
                when = f"were due on {tokens_due.isoformat()}" if tokens_days < 0 else f"are due in {tokens_days} days"
                messages.append(
                    f"the MS365 refresh tokens requested on {requested_on} {when} "
                    f"({tokens_due.isoformat()}): {REFRESH_TOKEN_STEPS}"
                )
    return PortalStatus(
        portal.name,
        portal.secret_key_id,
        expires_at,
        days_left,
        rotates_at,
        portal.previous_secret_key_id,
        previous_stops,
        hand_made,
        expiring,
        ews,
        reminder,
        messages,
        requested_on,
        tokens_due,
        due,
    )


def _hand_made_messages(portal: PortalOutput, key_ids: Iterable[str]) -> list[str]:
    """A delete command per hand-made secret, built only from GUIDs: the ids come from an outputs file, which anyone
    may have edited, and the command is meant to be pasted into a shell."""
    messages = []
    for key_id in key_ids:
        if is_guid(key_id) and is_guid(portal.client_id):
            messages.append(
                f"hand-made secret {key_id} of this adopted registration: remove it once Intrexx uses the published "
                f"secret (`az ad app credential delete --id {portal.client_id} --key-id {key_id}`)"
            )
        else:
            messages.append(
                "handMadeSecretKeyIds holds a value that is not a secret id (a GUID); check the adopt entry of "
                "this portal in the stack file and delete hand-made secrets in the Entra admin center "
                "(App registrations -> Certificates & secrets)"
            )
    return messages


def ews_status(today: date, client_id: str) -> str:
    """One line on EWS in Exchange Online as of `today`, for the app `client_id`, and the way off it."""
    return (
        f"{ews_state(today)} (this app: {client_id}). Move to Microsoft Graph: add a `connector: m365` portal entry "
        "for this portal, move its Intrexx applications to the Microsoft 365 connector, then remove this "
        '`connector: exchange` entry (README "Migrating from EWS to Microsoft Graph")'
    )


def milestones(portal: PortalOutput, stack: str) -> list[Milestone]:
    """Every dated event of a portal, by date, each with the steps that handle it."""
    handover = handover_steps(portal, stack)
    name = portal.name
    events = [
        Milestone(
            EventKind.ROTATION,
            portal.secret_rotates_at,
            "rotate the client secret and hand it to Intrexx",
            f"{renew_steps(portal, stack)}. Do it before the previous secret expires: Intrexx keeps working with "
            "the secret it holds until then.",
        ),
        Milestone(
            EventKind.SECRET_EXPIRY,
            portal.secret_expires_at,
            f"the published client secret {portal.secret_key_id} expires",
            f"Intrexx must hold a newer secret before this day (Entra answers AADSTS7000222 after it): "
            f"{renew_steps(portal, stack)}.",
        ),
        Milestone(
            EventKind.PREVIOUS_SECRET_EXPIRY,
            portal.previous_secret_expires_at,
            f"the previous client secret {portal.previous_secret_key_id} expires",
            f"If Intrexx still holds the previous secret, {handover}.",
        ),
    ]
    if portal.uses_ews:
        if portal.refresh_tokens_requested_on:
            events.append(
                Milestone(
                    EventKind.REFRESH_TOKENS,
                    refresh_tokens_due(portal.refresh_tokens_requested_on),
                    "request the MS365 refresh tokens again in Intrexx",
                    f"Intrexx keeps them {VALID_MONTHS} months (requested on "
                    f"{portal.refresh_tokens_requested_on.isoformat()}): {REFRESH_TOKEN_STEPS}.",
                )
            )
        migrate = (
            "move to Microsoft Graph: add a `connector: m365` entry for this portal, move its Intrexx applications "
            'to the Microsoft 365 connector, then remove the `connector: exchange` entry (README "Migrating from '
            'EWS to Microsoft Graph")'
        )
        events += [
            Milestone(
                EventKind.EWS_ALLOW_LIST,
                EWS_BLOCKED_FROM,
                "EWS in Exchange Online is blocked unless allow-listed",
                f"Run build/{stack_label(stack)}/{name}/ews-allow-list.ps1 (from `python -m intrexx_connector "
                f"render --stack {stack_label(stack)}`) in Exchange Online PowerShell to allow-list app "
                f"{portal.client_id}; then {migrate}.",
            ),
            Milestone(
                EventKind.EWS_RETIREMENT,
                EWS_SHUTDOWN,
                "EWS in Exchange Online is switched off",
                f"The Connector for Microsoft Exchange stops working: {migrate}.",
            ),
        ]
    return sorted(events, key=lambda event: (event.day, event.kind.value))


def next_due(events: Sequence[Milestone], today: date) -> Milestone:
    """The event that needs attention first: the earliest one still ahead, or one that passed and still matters
    (an expired secret, a missed rotation, overdue refresh tokens, a retired EWS)."""
    passed_for_good = {EventKind.PREVIOUS_SECRET_EXPIRY, EventKind.EWS_ALLOW_LIST}
    relevant = [e for e in events if e.day >= today or e.kind not in passed_for_good]
    return min(relevant or events, key=lambda event: (event.day, event.kind.value))


@dataclass(frozen=True)
class FleetEntry:
    """One portal of one stack in the fleet view."""

    stack: str
    portal: PortalOutput
    status: PortalStatus
    milestones: tuple[Milestone, ...]
    next: Milestone
    today: date

    @property
    def level(self) -> Level:
        status, today = self.status, self.today
        if status.days_left <= 0 or (status.refresh_tokens_due is not None and status.refresh_tokens_due < today):
            return Level.EXPIRED
        if self.portal.uses_ews and today >= EWS_SHUTDOWN:
            return Level.EXPIRED
        return Level.DUE if status.due else Level.OK

    @property
    def days_left(self) -> int:
        """Days until the next event (negative: it passed that many days ago)."""
        return (self.next.day - self.today).days

    def as_dict(self) -> dict:
        document = self.status.as_dict()
        document.update(
            {
                StatusKey.STACK: self.stack,
                StatusKey.ENVIRONMENT: self.portal.environment,
                StatusKey.CONNECTOR: self.portal.connector.value,
                StatusKey.NEXT_DUE: self.next.as_dict(),
                StatusKey.LEVEL: self.level.value,
                StatusKey.MILESTONES: [event.as_dict() for event in self.milestones],
            }
        )
        return document


@dataclass(frozen=True)
class Fleet:
    today: date
    warn_days: int
    entries: tuple[FleetEntry, ...]  # most urgent first

    @property
    def due(self) -> bool:
        return any(entry.status.due for entry in self.entries)

    @property
    def expired(self) -> list[FleetEntry]:
        return [entry for entry in self.entries if entry.level is Level.EXPIRED]

    def count(self, level: Level) -> int:
        return sum(1 for entry in self.entries if entry.level is level)

    @property
    def stacks(self) -> list[str]:
        return list(dict.fromkeys(entry.stack for entry in self.entries))

    def as_dict(self) -> dict:
        return {
            "today": self.today.isoformat(),
            "warnDays": self.warn_days,
            "due": self.due,
            "stacks": self.stacks,
            "portals": [entry.as_dict() for entry in self.entries],
        }


def fleet_status(stacks: Iterable[tuple[str, Sequence[PortalOutput]]], today: date, warn_days: int) -> Fleet:
    """Every portal of every stack, the one due first at the top (then by stack and portal name)."""
    entries = []
    for stack, portals in stacks:
        for portal in portals:
            events = milestones(portal, stack)
            status = portal_status(portal, today, warn_days, stack)
            entries.append(FleetEntry(stack, portal, status, tuple(events), next_due(events, today), today))
    rank = {level: index for index, level in enumerate(Level)}
    entries.sort(key=lambda e: (rank[e.level], e.next.day, e.stack, e.portal.name))
    return Fleet(today, warn_days, tuple(entries))
