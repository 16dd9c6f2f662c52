"""`status --notify URL`: one message to a Microsoft Teams or Slack incoming webhook when something is due.

Formats:
* Microsoft Teams, a Workflows webhook ("Send webhook alerts to a channel"): a JSON object `{"type": "message",
  "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": <Adaptive Card>}]}`
  (learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook, "Send Adaptive
  Cards using an Incoming Webhook"; learn.microsoft.com/connectors/teams, "Microsoft Teams webhook"). Card text
  is markdown there, so every value is escaped (`card_text`).
* Slack, an incoming webhook (hooks.slack.com): `{"text": <fallback>, "blocks": [...]}` (docs.slack.dev/messaging/
  sending-messages-using-incoming-webhooks; Block Kit). Values go into `plain_text` objects, which Slack shows as
  they are; the fallback `text` is mrkdwn, escaped as Slack asks (&, <, > as entities).

The URL is a secret (whoever holds it may post to the channel): it is never printed, logged or put in an error;
only its scheme and host may be named. It must be https (http only on loopback, as for base URLs: components/
urls.py); the request goes through the project's transport (intrexx_connector/transport.py): one deadline for
the whole request, no redirect followed, the answer read up to a limit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests

from components.facts import LOOPBACK_HOSTS
from components.text import unsafe_characters
from components.urls import UrlError, WebUrl, parse_web_url

from .errors import CheckFailed, UsageError
from .status import Fleet, FleetEntry
from .transport import OriginHttp, TransportError, deadline_session

ENVIRONMENT_VARIABLE = "INTREXX_NOTIFY_WEBHOOK"
TIMEOUT_SECONDS = 30.0
SLACK_HOSTS = ("hooks.slack.com",)
MAX_ENTRIES = 20
MAX_ANSWER_BYTES = (
    64 * 1024
)  # Teams answers 202 with an empty body, Slack 200 "ok"  # one message stays readable; the rest is counted


class Kind(StrEnum):
    TEAMS = "teams"
    SLACK = "slack"


@dataclass(frozen=True)
class Webhook:
    """A checked webhook URL. repr and str never show it."""

    url: str
    origin: WebUrl
    kind: Kind

    def __repr__(self) -> str:
        return f"Webhook({self.kind.value}, {self.origin.origin_text})"

    __str__ = __repr__


class NotifyError(UsageError):
    """The webhook URL is unusable (exit 2, before anything is read or written); the message never quotes it."""


class WebhookFailed(CheckFailed):
    """The post did not succeed (exit 1); the message names the webhook's scheme and host only."""


def parse_webhook(url: str, source: str) -> Webhook:
    """Check the URL (https, or http on loopback; a query is allowed: Workflows URLs carry their signature there)."""
    if not isinstance(url, str) or unsafe_characters(url) or any(c.isspace() for c in url):
        raise NotifyError(f"{source}: must be a webhook URL without white space or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise NotifyError(f"{source}: is not a URL") from None
    if parts.fragment or "#" in url:
        raise NotifyError(f"{source}: must not have a fragment ('#...')")
    base = url.split("?", 1)[0]
    try:
        origin = parse_web_url(base, http_hosts=LOOPBACK_HOSTS)
    except UrlError as error:
        # The reasons of components/urls.py name rules, never the URL itself.
        raise NotifyError(f"{source}: the webhook URL {error}") from None
    kind = Kind.SLACK if origin.host in SLACK_HOSTS else Kind.TEAMS
    return Webhook(url, origin, kind)


class _WebhookHttp(OriginHttp):
    """The transport's client bound to the webhook's origin (one deadline, no redirect followed, the answer read up
    to a limit); the target check also takes http on loopback, as `parse_webhook` does."""

    def _check_target(self, url: str) -> None:
        try:
            target = parse_web_url(url.split("?", 1)[0], http_hosts=LOOPBACK_HOSTS)
        except UrlError:
            raise WebhookFailed("refusing to post: the webhook URL is not usable") from None
        if target.origin != self.origin.origin:
            raise WebhookFailed(f"refusing to post anywhere but {self.origin.origin_text}")


def card_text(value: str) -> str:
    """A value as literal text in Adaptive Card markdown (Teams: bold, italic, links, lists; adaptivecards.io,
    "Text features"): the characters that start emphasis, a link, code or markup are backslash-escaped. No line of
    a message starts with a value, so list markers cannot form; dates and parentheses stay readable."""
    return re.sub(r"([\\`*_\[\]<>|~#])", r"\\\1", value)


def slack_text(value: str) -> str:
    """A value as literal text in Slack mrkdwn (docs.slack.dev: escape &, < and >)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(entry: FleetEntry, today_days: int) -> str:
    return (
        f"{entry.stack} / {entry.portal.name}: {entry.next.title} on {entry.next.day.isoformat()} ({today_days} days)"
    )


def message(fleet: Fleet, kind: Kind) -> dict[str, Any]:
    """The message for the due portals of `fleet`."""
    due = [entry for entry in fleet.entries if entry.status.due]
    lines = [_line(entry, (entry.next.day - fleet.today).days) for entry in due[:MAX_ENTRIES]]
    if len(due) > MAX_ENTRIES:
        lines.append(f"and {len(due) - MAX_ENTRIES} more")
    title = f"Intrexx connectors: {len(due)} portal(s) need attention within {fleet.warn_days} days"
    hint = "Run `python -m intrexx_connector status` for the steps; the calendar and report are in the pipeline run."
    if kind is Kind.SLACK:
        return {
            "text": slack_text(title),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                *({"type": "section", "text": {"type": "plain_text", "text": line[:3000]}} for line in lines),
                {"type": "context", "elements": [{"type": "plain_text", "text": hint}]},
            ],
        }
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": card_text(title), "weight": "Bolder", "size": "Medium", "wrap": True},
            *({"type": "TextBlock", "text": card_text(line), "wrap": True} for line in lines),
            {"type": "TextBlock", "text": card_text(hint), "isSubtle": True, "wrap": True},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def notify(
    fleet: Fleet,
    webhook: Webhook,
    session: requests.Session | None = None,
    timeout: float = TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Post one message when something is due; nothing otherwise. True when a message was sent."""
    if not fleet.due:
        return False
    body = json.dumps(message(fleet, webhook.kind)).encode("utf-8")
    deadline = clock() + timeout
    http = _WebhookHttp(deadline_session(session), webhook.origin, lambda: deadline, "the webhook", MAX_ANSWER_BYTES)
    where = f"the {webhook.kind.value} webhook at {webhook.origin.origin_text}"
    try:
        answer = http.request("POST", webhook.url, headers={"Content-Type": "application/json"}, data=body)
    except TransportError as error:
        raise WebhookFailed(f"posting to {where} failed: {_without_url(error.reason, webhook)}") from None
    except requests.RequestException as error:
        raise WebhookFailed(f"posting to {where} failed ({type(error).__name__})") from None
    if 300 <= answer.status_code < 400:
        raise WebhookFailed(f"{where} answered with a redirect (HTTP {answer.status_code}), which is not followed")
    if not 200 <= answer.status_code < 300:
        raise WebhookFailed(f"{where} answered HTTP {answer.status_code}; check the webhook in the CI's secret store")
    return True


def _without_url(reason: str, webhook: Webhook) -> str:
    """A transport message with any part of the webhook URL beyond its origin removed."""
    parts = urlsplit(webhook.url)
    for secret in (webhook.url, parts.path, parts.query):
        if secret and secret != "/":
            reason = reason.replace(secret, "[webhook]")
    return reason
