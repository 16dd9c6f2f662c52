"""verify against a real OpenID provider on loopback that answers like Entra ID (tests/idp)."""

import dataclasses
import itertools
import json
import time

import pytest
from idp_fixture import silent_server
from outputs_fixtures import HR, LEGACY, OPS, TEAM, USERS, WIDE, stack_outputs

from components.contract import CLIENT_SECRETS, PORTALS, PortalOutput
from intrexx_connector.cli import main
from intrexx_connector.errors import UsageError
from intrexx_connector.stack_outputs import parse_outputs
from intrexx_connector.verify import VerifyOptions, verify_portals

WIDE_ROLES = ["Calendars.ReadWrite", "Contacts.ReadWrite", "Mail.ReadWrite"]


@pytest.fixture
def idp(identity_provider):
    yield identity_provider
    for tenant in {stack_outputs([HR])[PORTALS]["hr"]["tenantId"]}:
        identity_provider.set_faults(tenant)


def register(idp, document, roles=None, delay=0.0, secret=None):
    for name, portal in document[PORTALS].items():
        idp.add_client(
            portal["tenantId"],
            portal["clientId"],
            secret or document[CLIENT_SECRETS][name],
            roles=(roles or {}).get(name, ()),
            replication_delay_seconds=delay,
        )


def run(idp, document, progress=None, apis=None, **options):
    """verify over the outputs; `apis`: an origin whose mailbox stand-ins replace Graph and EWS (loopback_apis)."""
    options.setdefault("timeout", 10.0)
    lines = [] if progress is None else progress
    portals = parse_outputs(json.dumps(document))
    return verify_portals(
        portals if apis is None else [loopback_apis(portal, apis) for portal in portals],
        VerifyOptions(authority_host=idp.origin, http_client=idp.session(), **options),
        lambda event: lines.append(event.line),
    )


def test_healthy_portals_get_tokens_and_roles_are_checked(idp):
    document = stack_outputs([HR, WIDE, TEAM])
    register(idp, document, roles={"wide": WIDE_ROLES})
    results = {r.name: r for r in run(idp, document)}
    assert all(r.ok for r in results.values()), results
    assert results["wide"].roles == WIDE_ROLES and results["wide"].attempts == 1
    assert "scoped by Exchange RBAC" in results["team"].reason


def test_a_missing_role_fails_by_name_after_waiting_for_consent(idp):
    document = stack_outputs([WIDE])
    register(idp, document, roles={"wide": ["Mail.ReadWrite"]})
    lines = []
    (result,) = run(idp, document, lines, timeout=2.5)
    assert not result.ok and result.attempts >= 2
    assert "role missing from the token: Calendars.ReadWrite, Contacts.ReadWrite" in result.reason
    assert lines and all(line.startswith("wide: ") for line in lines)


def test_replication_delay_is_waited_out_with_at_most_one_request_per_second(idp):
    document = stack_outputs([HR])
    register(idp, document, delay=2.5)
    idp.reset_requests()
    lines = []
    started = time.monotonic()
    (result,) = run(idp, document, lines, timeout=20)
    assert result.ok and result.attempts >= 2, result
    assert time.monotonic() - started < 2.5 + 2.5
    assert any("AADSTS700016" in line and "retrying in" in line for line in lines)
    stamps = idp.requests()[document[PORTALS]["hr"]["clientId"]]["timestamps"]
    # The README's promise, as the provider saw it: at least a second between two token requests of a client.
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps)), stamps


def test_wrong_secret_fails_with_guidance(idp):
    document = stack_outputs([HR])
    register(idp, document, secret="not-the-deployed-secret")
    (result,) = run(idp, document, timeout=2)
    assert not result.ok and "AADSTS7000215" in result.reason and "render again" in result.reason
    assert 7000215 in result.codes


def test_unknown_tenant_fails_at_once(idp):
    honest = stack_outputs([HR])
    # Another tenant everywhere it appears: the outputs contract holds the authority and endpoints to the tenant.
    tenant = honest[PORTALS]["hr"]["tenantId"]
    document = json.loads(json.dumps(honest).replace(tenant, "0badc0de-0000-4000-8000-000000000000"))
    started = time.monotonic()
    (result,) = run(idp, document, timeout=30)
    assert not result.ok and result.attempts == 1 and time.monotonic() - started < 5
    assert "tenant not found" in result.reason and result.codes == [90002]


def test_server_errors_are_retried(idp):
    document = stack_outputs([HR])
    register(idp, document)
    idp.set_faults(document[PORTALS]["hr"]["tenantId"], status=503, count=2)
    lines = []
    (result,) = run(idp, document, lines)
    assert result.ok and result.attempts == 3, (result, lines)
    assert any("503" in line for line in lines)


def test_a_server_that_never_answers_ends_by_the_timeout():
    document = stack_outputs([HR])
    with silent_server() as server:
        started = time.monotonic()
        (result,) = verify_portals(
            parse_outputs(json.dumps(document)),
            VerifyOptions(authority_host=server.origin, timeout=2.0),
            lambda line: None,
        )
    assert not result.ok and "gave up after 2 s" in result.reason
    assert time.monotonic() - started < 4.5


def test_an_opaque_token_ends_with_a_warning_well_within_the_timeout(idp):
    """Microsoft: "Tokens that a Microsoft API receives might not always be a JWT that can be decoded"
    (learn.microsoft.com/entra/identity-platform/access-tokens). Roles cannot be read then; waiting for them until
    the timeout would only delay the answer."""
    document = stack_outputs([WIDE])
    portal = document[PORTALS]["wide"]
    idp.add_client(
        portal["tenantId"], portal["clientId"], document[CLIENT_SECRETS]["wide"], roles=WIDE_ROLES, opaque_tokens=True
    )
    lines = []
    started = time.monotonic()
    (result,) = run(idp, document, lines, timeout=30)
    assert time.monotonic() - started < 5
    assert result.ok and result.attempts == 1 and not lines, (result, lines)
    assert result.warnings == ["roles not checkable (opaque token)"] and result.roles == []
    assert result.summary_line().endswith("; warning: roles not checkable (opaque token)")
    assert result.as_dict()["warnings"] == ["roles not checkable (opaque token)"]


def test_an_opaque_token_needs_no_warning_where_no_role_is_checked(idp):
    document = stack_outputs([HR])
    portal = document[PORTALS]["hr"]
    idp.add_client(portal["tenantId"], portal["clientId"], document[CLIENT_SECRETS]["hr"], opaque_tokens=True)
    (result,) = run(idp, document, timeout=10)
    assert result.ok and result.warnings == [] and result.attempts == 1


def test_authority_must_be_https():
    document = stack_outputs([HR])
    with pytest.raises(UsageError, match="must be an https URL"):
        verify_portals(parse_outputs(json.dumps(document)), VerifyOptions(authority_host="http://127.0.0.1:1"))


def test_end_to_end_program_outputs_through_render_and_verify(idp, tmp_path, capsys, monkeypatch):
    """The outputs of the real program (simulated tenant) through the command line against the provider."""
    document = stack_outputs([HR, OPS, WIDE])
    register(idp, document, roles={"wide": WIDE_ROLES})
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", idp.ca_file)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert main(["render", "--outputs", str(path), "--out", str(tmp_path / "build")]) == 0
    rendered = json.loads((tmp_path / "build" / "wide" / "m365-connector.json").read_text())
    assert rendered["clientSecret"] == document[CLIENT_SECRETS]["wide"]
    capsys.readouterr()
    code = main(["verify", "--outputs", str(path), "--authority-host", idp.origin, "--timeout", "10", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured
    report = json.loads(captured.out)
    assert report["ok"] and {p["portal"] for p in report["portals"]} == {"hr", "ops", "wide"}
    for secret in document[CLIENT_SECRETS].values():
        assert secret not in captured.out + captured.err
    register(idp, document, secret="rotated-away")
    assert main(["verify", "--outputs", str(path), "--authority-host", idp.origin, "--timeout", "1"]) == 1
    assert "FAILED" in capsys.readouterr().out


def loopback_apis(portal: PortalOutput, origin: str) -> PortalOutput:
    """The portal with its resource APIs at the provider's mailbox stand-ins (Graph under /graph, EWS under /ews).
    Applied after the outputs are read: an outputs file naming such endpoints is refused, since its client secret
    and users' tokens would go there (contract.py, _check_cloud_endpoints)."""
    resource, scopes = portal.resource, portal.scopes
    for real, local in (
        ("https://graph.microsoft.com", f"{origin}/graph"),
        ("https://outlook.office365.com", f"{origin}/ews"),
    ):
        scopes = tuple(s.replace(real, local) for s in scopes)
        resource = resource.replace(real, local)
    ews_url = f"{origin}/ews/Exchange.asmx" if portal.ews_url else None
    return dataclasses.replace(portal, resource=resource, scopes=scopes, ews_url=ews_url)


def register_device_client(idp, document, refresh_tokens=True):
    ((name, fields),) = document[PORTALS].items()
    idp.add_client(
        fields["tenantId"],
        fields["clientId"],
        document[CLIENT_SECRETS][name],
        public_client_flows=True,
        delegated_scopes=[s.rsplit("/", 1)[-1] for s in fields["scopes"]],
        refresh_tokens=refresh_tokens,
    )
    return fields


def scripted_user_for(idp, fields, shown):
    def scripted_user(portal_outputs, flow):
        shown.append(flow["message"])
        idp.approve_device_code(fields["tenantId"], flow["user_code"], "alice@contoso.example")

    return scripted_user


def test_device_code_for_the_exchange_connector_redeems_the_refresh_token_and_reads_ews(idp):
    """What Intrexx's MediaGateway does with "Request MS365 Refresh Token": a device code sign-in for the EWS scope
    and offline_access, then EWS calls with access tokens redeemed from the refresh token."""
    document = stack_outputs([LEGACY])
    fields = register_device_client(idp, document)
    shown: list = []
    (result,) = run(
        idp, document, apis=idp.origin, device_code=True, on_device_flow=scripted_user_for(idp, fields, shown)
    )
    assert result.ok, result
    assert "mailbox user signed in, refresh token redeemed, inbox 'Inbox' read" in result.reason
    assert result.inbox == {"displayName": "Inbox", "totalItemCount": 3}
    assert shown and "code" in shown[0]
    seen = idp.requests()[fields["clientId"]]
    ews_scope = f"{idp.origin}/ews/EWS.AccessAsUser.All"
    # Exactly the EWS scope and offline_access (openid and profile MSAL adds to every sign-in), nothing of Graph.
    assert [set(scope.split()) for scope in seen["deviceCodeScopes"]] == [
        {ews_scope, "offline_access", "openid", "profile"}
    ]
    assert seen["grants"][-1] == "refresh_token" and ews_scope in seen["scopes"][-1].split()
    assert "client_credentials" in seen["grants"] and "urn:ietf:params:oauth:grant-type:device_code" in seen["grants"]
    assert seen["grants"].count("refresh_token") == 2  # Intrexx's redemption, then the confidential client's
    assert "keep publicClientFlows: true" in result.reason and result.as_dict()["confidentialRedemption"]


def test_device_code_says_when_the_client_secret_redeems_the_refresh_token_too(idp, monkeypatch):
    """Where the provider redeems the refresh token for the confidential client, verify says that
    publicClientFlows: false may do (Intrexx sending its secret is not confirmed, README "Public client flows")."""
    import msal

    document = stack_outputs([USERS])
    fields = register_device_client(idp, document)
    redeemed = []

    def redeem(app, refresh_token, scopes, **kwargs):
        redeemed.append((type(app).__name__, refresh_token))
        return {"access_token": "redeemed-with-the-secret", "token_type": "Bearer"}

    monkeypatch.setattr(msal.ConfidentialClientApplication, "acquire_token_by_refresh_token", redeem)
    (result,) = run(idp, document, apis=idp.origin, device_code=True, on_device_flow=scripted_user_for(idp, fields, []))
    assert result.ok and redeemed and redeemed[0][0] == "ConfidentialClientApplication", result
    assert result.confidential_redemption.startswith("the refresh token is redeemed with the client secret too: ")
    assert "publicClientFlows: false would do if Intrexx sends its secret" in result.reason


def test_device_code_for_microsoft_365_user_accounts_reads_the_graph_inbox(idp):
    document = stack_outputs([USERS])
    fields = register_device_client(idp, document)
    (result,) = run(idp, document, apis=idp.origin, device_code=True, on_device_flow=scripted_user_for(idp, fields, []))
    assert result.ok, result
    assert "mailbox user signed in, inbox 'Inbox' read" in result.reason
    assert result.inbox == {"displayName": "Inbox", "totalItemCount": 3}
    # The refresh token also went to the confidential client (with the secret), which this provider refuses.
    assert idp.requests()[fields["clientId"]]["grants"][-1] == "refresh_token"
    assert result.confidential_redemption.startswith("not redeemed with the client secret (")
    assert result.confidential_redemption.endswith("): keep publicClientFlows: true")


def test_device_code_is_skipped_where_intrexx_never_uses_it(idp):
    """User accounts without public client flows sign in through the browser; service accounts never sign in."""
    browser_users = {**USERS, "publicClientFlows": False}
    document = stack_outputs([browser_users, WIDE])
    register(idp, document, roles={"wide": WIDE_ROLES})
    results = {
        r.name: r for r in run(idp, document, apis=idp.origin, device_code=True, on_device_flow=lambda p, f: None)
    }
    assert results["users"].ok and "device code flow skipped (user accounts sign in through the browser" in (
        results["users"].reason
    )
    assert results["wide"].ok and "device code flow skipped (application access)" in results["wide"].reason


def test_device_code_fails_when_no_refresh_token_comes_back(idp):
    """A sign-in without a refresh token gives Intrexx nothing to keep: verify says so."""
    document = stack_outputs([LEGACY])
    fields = register_device_client(idp, document, refresh_tokens=False)
    (result,) = run(idp, document, apis=idp.origin, device_code=True, on_device_flow=scripted_user_for(idp, fields, []))
    assert not result.ok and "no refresh token came back" in result.reason, result


def test_device_code_fails_clearly_without_public_client_flows(idp):
    document = stack_outputs([HR])
    fields = document[PORTALS]["hr"]
    idp.add_client(fields["tenantId"], fields["clientId"], document[CLIENT_SECRETS]["hr"])
    (result,) = run(idp, document, apis=idp.origin, device_code=True, on_device_flow=lambda p, f: None)
    assert not result.ok and "public client flows are off" in result.reason
