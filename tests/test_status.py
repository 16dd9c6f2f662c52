import json
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from outputs_fixtures import SAMPLE_PORTALS, TODAY, stack_outputs

from components.contract import CLIENT_SECRETS
from components.ews import EWS_BLOCKED_FROM, EWS_SHUTDOWN
from intrexx_connector.errors import OutputsError
from intrexx_connector.stack_outputs import parse_outputs
from intrexx_connector.status import StatusKey, ews_status, portal_status


def without_secrets() -> dict:
    outputs = stack_outputs(SAMPLE_PORTALS)
    del outputs[CLIENT_SECRETS]
    return {p.name: p for p in parse_outputs(json.dumps(outputs), need_secrets=False)}


PORTALS = without_secrets()
HR, OPS, LEGACY = PORTALS["hr"], PORTALS["ops"], PORTALS["legacy"]
EXPIRES = HR.secret_expires_at
ROTATES = HR.secret_rotates_at


def test_status_needs_no_secrets_and_reads_the_dates():
    status = portal_status(OPS, TODAY, 10)
    assert status.name == "ops"
    assert status.secret_expires_at == EXPIRES
    assert status.rotates_at == ROTATES
    assert status.days_left == (EXPIRES - TODAY).days
    assert status.expiring is False
    assert status.messages == []


@given(
    today=st.dates(min_value=date(2025, 1, 1), max_value=date(2029, 12, 31)),
    warn_days=st.integers(min_value=-30, max_value=1000),
)
def test_expiring_means_within_the_warning_window(today, warn_days):
    status = portal_status(HR, today, warn_days)
    assert status.days_left == (EXPIRES - today).days
    assert status.expiring == (status.days_left <= warn_days)
    mentions_expiry = any("client secret expire" in m for m in status.messages)
    assert mentions_expiry == (status.expiring or status.days_left <= 0)


def test_an_expired_secret_says_so():
    status = portal_status(HR, EXPIRES + timedelta(days=3), 30)
    assert status.days_left == -3 and status.expiring
    assert any("expired on" in m and "AADSTS7000222" in m for m in status.messages)


def test_an_expiring_secret_names_the_date_and_what_to_do():
    status = portal_status(HR, EXPIRES - timedelta(days=10), 30)
    assert status.expiring and status.days_left == 10
    (message,) = [m for m in status.messages if "expires" in m]
    assert EXPIRES.isoformat() in message and "in 10 days" in message and "pulumi up" in message


def test_a_due_rotation_is_reported():
    assert not any("rotation" in m for m in portal_status(HR, ROTATES - timedelta(days=1), 0).messages)
    assert any("rotation due since" in m for m in portal_status(HR, ROTATES, 0).messages)


def test_ews_status_before_the_block():
    line = ews_status(date(2026, 9, 30), "app-id")
    assert "works until 2026-09-30" in line
    assert "from 2026-10-01" in line and "2027-04-01" in line and "app-id" in line
    assert "blocked since" not in line and "switched off since" not in line


@pytest.mark.parametrize("today", [EWS_BLOCKED_FROM, date(2026, 11, 24), EWS_SHUTDOWN - timedelta(days=1)])
def test_ews_status_while_blocked(today):
    line = ews_status(today, "app-id")
    assert "blocked tenant by tenant from 2026-10-01" in line
    assert "EwsAllowedAppIDs" in line and "EWSEnabled" in line and "app-id" in line
    assert f"in {(EWS_SHUTDOWN - today).days} days" in line
    assert "connector: m365" in line and "remove this `connector: exchange` entry" in line


@pytest.mark.parametrize("today", [EWS_SHUTDOWN, date(2028, 1, 1)])
def test_ews_status_after_the_shutdown(today):
    line = ews_status(today, "app-id")
    assert line.startswith("EWS in Exchange Online was switched off on 2027-04-01")
    assert "connector: m365" in line and "remove this `connector: exchange` entry" in line


def test_only_ews_portals_carry_an_ews_status():
    legacy = portal_status(LEGACY, TODAY, 30)
    assert legacy.ews == ews_status(TODAY, LEGACY.client_id)
    assert legacy.ews in legacy.messages
    assert portal_status(HR, TODAY, 30).ews == ews_status(TODAY, HR.client_id)
    assert portal_status(OPS, TODAY, 30).ews is None


def test_only_delegated_portals_get_the_refresh_token_reminder():
    reminder = portal_status(HR, TODAY, 30).refresh_token_reminder
    assert "three months" in reminder and "Request MS365 Refresh Token" in reminder
    assert portal_status(LEGACY, TODAY, 30).refresh_token_reminder == reminder
    assert portal_status(OPS, TODAY, 30).refresh_token_reminder is None


def test_as_dict_is_json_ready():
    document = portal_status(LEGACY, TODAY, 200).as_dict()
    assert json.loads(json.dumps(document)) == document
    assert document[StatusKey.PORTAL] == "legacy"
    assert document[StatusKey.SECRET_EXPIRES_AT] == EXPIRES.isoformat()
    assert document[StatusKey.SECRET_ROTATES_AT] == ROTATES.isoformat()
    assert document[StatusKey.EXPIRING] is True
    assert document[StatusKey.DAYS_LEFT] == (EXPIRES - TODAY).days
    assert document[StatusKey.EWS].startswith("EWS in Exchange Online is blocked tenant by tenant from")
    assert document[StatusKey.MESSAGES]


def test_a_malformed_date_is_an_outputs_error():
    outputs = stack_outputs(SAMPLE_PORTALS)
    outputs["portals"]["hr"]["secretExpiresAt"] = "soon"
    with pytest.raises(OutputsError, match=r"portals\.hr\.secretExpiresAt: must be an ISO 8601 date"):
        parse_outputs(json.dumps(outputs), need_secrets=False)


def test_the_previous_secret_warns_before_it_stops_working():
    stops = OPS.previous_secret_expires_at
    assert stops == OPS.secret_rotates_at
    quiet = portal_status(OPS, stops - timedelta(days=31), 30, stack="prod")
    assert not any("previous secret" in m for m in quiet.messages)
    status = portal_status(OPS, stops - timedelta(days=5), 30, stack="prod")
    (message,) = [m for m in status.messages if "previous secret" in m]
    assert OPS.previous_secret_key_id in message and "in 5 days" in message
    assert (
        "python -m intrexx_connector render --stack prod" in message and "build/prod/ops/m365-connector.json" in message
    )
    assert status.as_dict()["previousSecretStops"] == stops.isoformat()
    assert status.expiring is False, "the previous secret's end is a warning, not a failure"


def test_sign_in_portals_are_told_to_apply_and_restart():
    status = portal_status(HR, HR.previous_secret_expires_at - timedelta(days=1), 30, stack="dev")
    (message,) = [m for m in status.messages if "previous secret" in m]
    assert "python -m intrexx_connector apply --stack dev --portal hr --portal-dir" in message
    assert "restart the portal server" in message
