"""The test IdP speaks to MSAL like Entra ID does."""

from __future__ import annotations

import base64
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import msal
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from idp_fixture import IdentityProvider, jwt_claims, missing_prerequisites, silent_server
from msal.exceptions import MsalServiceError

from intrexx_connector.verify import EWS_GET_INBOX  # the request verify sends

USER = "alice@contoso.example"
EWS_TYPES = "{http://schemas.microsoft.com/exchange/services/2006/types}"
EWS_MESSAGES = "{http://schemas.microsoft.com/exchange/services/2006/messages}"


def b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def verify_signature(idp: IdentityProvider, tenant: str, token: str) -> None:
    """Check the RS256 signature against the keys the tenant's discovery document names."""
    with idp.session() as session:
        config = session.get(f"{idp.authority(tenant)}/v2.0/.well-known/openid-configuration").json()
        keys = session.get(config["jwks_uri"]).json()["keys"]
    header = jwt_claims("." + token.split(".")[0])  # the header decodes like a payload
    (jwk,) = [k for k in keys if k["kid"] == header["kid"]]
    public_key = rsa.RSAPublicNumbers(b64url_int(jwk["e"]), b64url_int(jwk["n"])).public_key()
    signing_input, signature = token.rsplit(".", 1)
    public_key.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        signing_input.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def sign_in_while_polling(app, flow, idp: IdentityProvider, tenant: str) -> dict:
    """MSAL polls while the scripted user signs in, as it would with a person."""
    outcome = {}
    poller = threading.Thread(target=lambda: outcome.update(app.acquire_token_by_device_flow(flow)))
    poller.start()
    idp.approve_device_code(tenant, flow["user_code"], USER)
    poller.join(timeout=10)
    return outcome


def confidential_app(idp: IdentityProvider, tenant: str, client_id: str, secret: str, timeout: float = 5):
    return msal.ConfidentialClientApplication(
        client_id, client_credential=secret, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=timeout),
    )


@pytest.fixture
def tenant() -> str:
    return str(uuid.uuid4())


def test_client_credentials_token_carries_roles_and_audience(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret", roles=["full_access_as_app", "Mail.Read"])

    result = confidential_app(idp, tenant, client_id, "s3cret").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )

    assert "access_token" in result, result
    claims = jwt_claims(result["access_token"])
    assert claims["aud"] == f"{idp.origin}/graph"
    assert claims["roles"] == ["full_access_as_app", "Mail.Read"]
    assert claims["tid"] == tenant
    assert claims["appid"] == claims["azp"] == client_id
    assert claims["iss"] == f"{idp.authority(tenant)}/v2.0"
    assert "scp" not in claims
    verify_signature(idp, tenant, result["access_token"])
    assert idp.requests()[client_id]["count"] == 1

    # An app-only token reads a named mailbox but not /me.
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    with idp.session() as session:
        inbox = f"{idp.origin}/graph/v1.0/users/{USER}/mailFolders/inbox"
        assert session.get(inbox, headers=headers).status_code == 200
        assert session.get(f"{idp.origin}/graph/v1.0/me/mailFolders/inbox", headers=headers).status_code == 400


def test_wrong_secret_is_invalid_client_7000215(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "right")

    result = confidential_app(idp, tenant, client_id, "wrong").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )

    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]
    assert result["error_description"].startswith("AADSTS7000215: ")

    idp.add_client(tenant, client_id, "wrong")  # rotated secret takes effect at once
    result = confidential_app(idp, tenant, client_id, "wrong").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )
    assert "access_token" in result, result


def test_replication_delay_gives_700016_then_a_token(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret", replication_delay_seconds=1)
    registered = time.monotonic()
    app = confidential_app(idp, tenant, client_id, "s3cret")

    early = app.acquire_token_for_client([f"{idp.origin}/graph/.default"])
    assert early["error"] == "unauthorized_client"
    assert early["error_codes"] == [700016]
    assert f"'{client_id}' was not found in the directory '{tenant}'" in early["error_description"]

    time.sleep(max(0.0, 1.1 - (time.monotonic() - registered)))
    # MSAL keeps a 400 answer for 60 s per app object: the same app does not ask again.
    assert app.acquire_token_for_client([f"{idp.origin}/graph/.default"])["error_codes"] == [700016]
    assert idp.requests()[client_id]["count"] == 1

    late = confidential_app(idp, tenant, client_id, "s3cret").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )
    assert "access_token" in late, late
    assert idp.requests()[client_id]["count"] == 2


def test_unknown_tenant_is_90002(identity_provider):
    idp = identity_provider
    tenant = str(uuid.uuid4())

    # MSAL reads discovery while constructing the app and raises on a 4xx answer.
    with pytest.raises(ValueError) as raised:
        confidential_app(idp, tenant, str(uuid.uuid4()), "s3cret")
    assert "AADSTS90002" in str(raised.value.__context__)

    with idp.session() as session:
        answer = session.post(f"{idp.authority(tenant)}/v2.0/token", data={"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["error_codes"] == [90002]


def test_5xx_fault_makes_msal_raise_then_recovers(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret")
    idp.set_faults(tenant, status=503, count=1)

    with pytest.raises(MsalServiceError, match="HTTP Error: 503"):
        confidential_app(idp, tenant, client_id, "s3cret").acquire_token_for_client([f"{idp.origin}/graph/.default"])

    # A new app object: MSAL would replay the 503 from its own cache for 5 s.
    result = confidential_app(idp, tenant, client_id, "s3cret").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )
    assert "access_token" in result, result
    assert idp.requests()[client_id]["count"] == 2


def test_hang_fault_times_out(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret")
    app = confidential_app(idp, tenant, client_id, "s3cret", timeout=1)
    idp.set_faults(tenant, hang=True)
    try:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            app.acquire_token_for_client([f"{idp.origin}/graph/.default"])
        assert time.monotonic() - started < 2.5
    finally:
        idp.set_faults(tenant)
    assert "access_token" in app.acquire_token_for_client([f"{idp.origin}/graph/.default"])


def test_device_code_flow_then_graph_and_ews(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_public_client(tenant, client_id, ["Mail.Read", "EWS.AccessAsUser.All"])
    app = msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=5),
    )
    graph_scope = f"{idp.origin}/graph/Mail.Read"
    ews_scope = f"{idp.origin}/ews/EWS.AccessAsUser.All"

    flow = app.initiate_device_flow(scopes=[graph_scope])
    assert "user_code" in flow, flow
    assert flow["user_code"] in flow["message"]

    outcome = sign_in_while_polling(app, flow, idp, tenant)
    assert "access_token" in outcome, outcome
    assert "refresh_token" in outcome
    graph_claims = jwt_claims(outcome["access_token"])
    assert graph_claims["aud"] == f"{idp.origin}/graph"
    assert graph_claims["scp"] == "Mail.Read"
    assert graph_claims["tid"] == tenant
    assert graph_claims["preferred_username"] == USER
    assert "roles" not in graph_claims
    assert outcome["id_token_claims"]["preferred_username"] == USER

    session = idp.session()
    inbox = session.get(
        f"{idp.origin}/graph/v1.0/me/mailFolders/inbox",
        headers={"Authorization": f"Bearer {outcome['access_token']}"},
    )
    assert inbox.status_code == 200
    assert inbox.json() == {"id": "inbox", "displayName": "Inbox", "totalItemCount": 3, "unreadItemCount": 1}

    # The refresh token also yields an EWS token (Entra's multi-resource refresh token).
    (account,) = app.get_accounts()
    assert account["username"] == USER
    ews = app.acquire_token_silent([ews_scope], account=account)
    assert ews and "access_token" in ews, ews
    ews_claims = jwt_claims(ews["access_token"])
    assert ews_claims["aud"] == f"{idp.origin}/ews"
    assert ews_claims["scp"] == "EWS.AccessAsUser.All"

    answer = session.post(
        f"{idp.origin}/ews/Exchange.asmx",
        data=EWS_GET_INBOX.encode(),
        headers={"Authorization": f"Bearer {ews['access_token']}", "Content-Type": "text/xml; charset=utf-8"},
    )
    assert answer.status_code == 200
    message = ET.fromstring(answer.content).find(f".//{EWS_MESSAGES}GetFolderResponseMessage")
    assert message.get("ResponseClass") == "Success"
    assert message.find(f".//{EWS_TYPES}DisplayName").text == "Inbox"
    assert message.find(f".//{EWS_TYPES}TotalCount").text == "3"

    # Each API accepts only its own audience.
    wrong = session.post(
        f"{idp.origin}/ews/Exchange.asmx",
        data=EWS_GET_INBOX.encode(),
        headers={"Authorization": f"Bearer {outcome['access_token']}"},
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    missing = session.get(f"{idp.origin}/graph/v1.0/me/mailFolders/inbox")
    assert missing.status_code == 401
    assert 'Bearer error="invalid_token"' in missing.headers["WWW-Authenticate"]


def test_device_flow_rejects_scopes_of_two_resources(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_public_client(tenant, client_id, ["Mail.Read"])
    app = msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=5),
    )

    flow = app.initiate_device_flow(scopes=[f"{idp.origin}/graph/Mail.Read", f"{idp.origin}/ews/Mail.Read"])

    assert flow["error"] == "invalid_scope"
    assert flow["error_codes"] == [28000]


def test_public_client_flows_on_a_confidential_app(identity_provider, tenant):
    # verify --device-code: client credentials with the secret, then the device code
    # flow without it, with one client id (Entra's "Allow public client flows").
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(
        tenant, client_id, "s3cret", roles=["Mail.Read"], public_client_flows=True,
        delegated_scopes=["Mail.Read", "EWS.AccessAsUser.All"],
    )

    app_token = confidential_app(idp, tenant, client_id, "s3cret").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )
    assert "access_token" in app_token, app_token
    app_claims = jwt_claims(app_token["access_token"])
    assert app_claims["appid"] == app_claims["azp"] == client_id
    assert app_claims["roles"] == ["Mail.Read"]
    assert "scp" not in app_claims

    app = msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=5),
    )
    flow = app.initiate_device_flow(scopes=[f"{idp.origin}/graph/Mail.Read"])
    assert "user_code" in flow, flow
    outcome = sign_in_while_polling(app, flow, idp, tenant)
    assert "access_token" in outcome, outcome
    claims = jwt_claims(outcome["access_token"])
    assert claims["appid"] == claims["azp"] == client_id
    assert claims["scp"] == "Mail.Read"
    assert claims["preferred_username"] == USER
    assert "roles" not in claims
    assert outcome["id_token_claims"]["aud"] == client_id
    verify_signature(idp, tenant, outcome["access_token"])

    with idp.session() as session:
        inbox = session.get(
            f"{idp.origin}/graph/v1.0/me/mailFolders/inbox",
            headers={"Authorization": f"Bearer {outcome['access_token']}"},
        )
    assert inbox.status_code == 200
    assert inbox.json()["displayName"] == "Inbox"

    # Refresh without a secret is the public side too (and is multi-resource).
    (account,) = app.get_accounts()
    ews = app.acquire_token_silent([f"{idp.origin}/ews/EWS.AccessAsUser.All"], account=account)
    assert ews and "access_token" in ews, ews
    assert jwt_claims(ews["access_token"])["appid"] == client_id

    # Client credentials still need the secret: missing 7000218, wrong 7000215.
    with idp.session() as session:
        missing = session.post(f"{idp.authority(tenant)}/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "scope": f"{idp.origin}/graph/.default",
        })
    assert missing.status_code == 401
    assert missing.json()["error_codes"] == [7000218]
    wrong = confidential_app(idp, tenant, client_id, "wrong").acquire_token_for_client(
        [f"{idp.origin}/graph/.default"]
    )
    assert wrong["error_codes"] == [7000215]
    assert idp.requests()[client_id]["count"] >= 4


def test_device_flow_on_a_confidential_app_without_public_flows_is_7000218(identity_provider, tenant):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret", delegated_scopes=["Mail.Read"])
    app = msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=5),
    )

    flow = app.initiate_device_flow(scopes=[f"{idp.origin}/graph/Mail.Read"])

    assert "user_code" not in flow, flow
    assert flow["error"] == "invalid_client"
    assert flow["error_codes"] == [7000218]
    assert flow["error_description"].startswith(
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    )
    with idp.session() as session:
        answer = session.post(f"{idp.authority(tenant)}/v2.0/devicecode", data={
            "client_id": client_id, "scope": f"{idp.origin}/graph/Mail.Read openid profile offline_access",
        })
    assert answer.status_code in (400, 401)
    assert answer.json()["error_codes"] == [7000218]

    # The same app with the setting switched on serves the device flow.
    idp.add_client(tenant, client_id, "s3cret", public_client_flows=True, delegated_scopes=["Mail.Read"])
    flow = msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), instance_discovery=False,
        http_client=idp.session(timeout=5),
    ).initiate_device_flow(scopes=[f"{idp.origin}/graph/Mail.Read"])
    assert "user_code" in flow, flow


def test_silent_server_makes_msal_time_out():
    # MSAL's own session (timeout=1) retries once on connection errors, so the read
    # timeout of the stalled TLS handshake surfaces as ConnectionError after ~2 s.
    with silent_server() as silent:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
            msal.ConfidentialClientApplication(
                "client", client_credential="secret", authority=silent.authority("tenant"),
                instance_discovery=False, timeout=1,
            )
        assert time.monotonic() - started < 3


def test_silent_server_with_a_session_timeout(identity_provider):
    with silent_server() as silent:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            msal.ConfidentialClientApplication(
                "client", client_credential="secret", authority=silent.authority("tenant"),
                instance_discovery=False, http_client=identity_provider.session(timeout=1),
            )
        assert time.monotonic() - started < 2


def test_msal_own_session_trusts_the_ca_from_the_environment(identity_provider, tenant, monkeypatch):
    idp = identity_provider
    client_id = str(uuid.uuid4())
    idp.add_client(tenant, client_id, "s3cret")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", idp.ca_file)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    app = msal.ConfidentialClientApplication(
        client_id, client_credential="s3cret", authority=idp.authority(tenant), instance_discovery=False, timeout=5,
    )

    assert "access_token" in app.acquire_token_for_client([f"{idp.origin}/graph/.default"])


def test_missing_node_is_reported_with_the_install_command(tmp_path):
    problem = missing_prerequisites(node=str(tmp_path / "no-node"))
    assert "npm ci --prefix tests/idp" in problem and "make test" in problem
    problem = missing_prerequisites(node=sys.executable, idp_dir=tmp_path)
    assert "oidc-provider" in problem and "npm ci --prefix tests/idp" in problem
