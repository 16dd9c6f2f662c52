import dataclasses
import json
import re
import xml.etree.ElementTree as ElementTree

import pytest
from outputs_fixtures import HR, LEGACY, OPS, SAMPLE_PORTALS, TEAM, WIDE, stack_outputs

from components.clouds import CLOUDS
from components.contract import CLIENT_SECRETS, GrantedBy, timestamp
from intrexx_connector.errors import OutputsError
from intrexx_connector.render import (
    CONNECTOR_FILE,
    RBAC_FILE,
    SHEET_FILE,
    SIGN_IN_FILE,
    ConnectorKey,
    exchange_name,
    oauth2_element,
    ps_quote,
    render_all,
    render_portal,
    role_assignment_name,
)
from intrexx_connector.stack_outputs import parse_outputs

ALL_PORTALS = [*SAMPLE_PORTALS, TEAM, WIDE]
EXCHANGE_ENVIRONMENT = {
    "global": "O365Default",
    "usgovernment": "O365USGovGCCHigh",
    "dod": "O365USGovDoD",
    "china": "O365China",
}
DEVICE_LOGIN = {
    "global": "https://microsoft.com/devicelogin",
    "usgovernment": "https://microsoft.com/deviceloginus",
    "dod": "https://microsoft.com/deviceloginus",
    "china": "https://microsoft.com/deviceloginchina",
}


def portals_of(portals: list[dict], cloud: str | None = None) -> dict:
    outputs = stack_outputs(portals, cloud=cloud)
    return {p.name: p for p in parse_outputs(json.dumps(outputs))}


@pytest.fixture(scope="module")
def portals() -> dict:
    return portals_of(ALL_PORTALS)


@pytest.fixture
def rendered(portals, tmp_path) -> dict:
    render_all(list(portals.values()), tmp_path)
    return {name: tmp_path / name for name in portals}


def mode_of(path) -> int:
    return path.stat().st_mode & 0o777


def test_each_portal_gets_the_files_that_apply_to_it(portals, tmp_path):
    written = render_all(list(portals.values()), tmp_path)
    names = {portal: sorted(p.name for p in paths) for portal, paths in written.items()}
    assert names == {
        "hr": sorted([CONNECTOR_FILE, SHEET_FILE, SIGN_IN_FILE]),
        "ops": sorted([CONNECTOR_FILE, SHEET_FILE, RBAC_FILE]),
        "team": sorted([CONNECTOR_FILE, SHEET_FILE, RBAC_FILE]),
        "legacy": sorted([CONNECTOR_FILE, SHEET_FILE]),
        "wide": sorted([CONNECTOR_FILE, SHEET_FILE]),
    }
    for portal, paths in written.items():
        assert sorted(p.name for p in (tmp_path / portal).iterdir()) == sorted(p.name for p in paths)


def test_secret_files_are_0600_and_the_others_0644(rendered):
    for directory in rendered.values():
        for path in directory.iterdir():
            expected = 0o600 if path.name in (CONNECTOR_FILE, SIGN_IN_FILE) else 0o644
            assert mode_of(path) == expected, path


def test_the_secret_is_only_in_the_secret_files(portals, rendered):
    for name, directory in rendered.items():
        secret = portals[name].client_secret
        assert secret in (directory / CONNECTOR_FILE).read_text()
        assert secret not in (directory / SHEET_FILE).read_text()
        if (directory / RBAC_FILE).exists():
            assert secret not in (directory / RBAC_FILE).read_text()
        if (directory / SIGN_IN_FILE).exists():
            assert secret in (directory / SIGN_IN_FILE).read_text()


def test_exchange_connector_json_holds_everything_the_connector_needs(portals, rendered):
    hr = portals["hr"]
    document = json.loads((rendered["hr"] / CONNECTOR_FILE).read_text())
    assert document[ConnectorKey.SCHEMA_VERSION] == 1
    assert document["portal"] == "hr"
    assert document[ConnectorKey.CLIENT_SECRET] == hr.client_secret
    for key in (
        "environment",
        "cloud",
        "tenantId",
        "clientId",
        "authority",
        "authorityHost",
        "tokenEndpoint",
        "authorizeEndpoint",
        "deviceCodeEndpoint",
        "resource",
        "scopes",
        "api",
        "access",
        "redirectUris",
        "secretExpiresAt",
        "secretRotatesAt",
        "permissions",
        "signInRedirectUri",
    ):
        assert document[key] == hr.to_output()[key], key
    assert document[ConnectorKey.MEDIA_GATEWAY] == {
        ConnectorKey.HOST: "localhost",
        ConnectorKey.PORT: 8087,
        ConnectorKey.SSL_PORT: 9087,
        ConnectorKey.PROTOCOL: "gRPC",
    }
    assert document[ConnectorKey.EXCHANGE_SERVER] == "Office365"
    assert document["ewsUrl"] == "https://outlook.office365.com/EWS/Exchange.asmx"
    assert "ewsUrl" not in json.loads((rendered["ops"] / CONNECTOR_FILE).read_text())


@pytest.mark.parametrize("cloud", ["usgovernment", "dod", "china"])
def test_exchange_portals_in_a_national_cloud_name_its_ews_endpoint(cloud, tmp_path):
    (legacy,) = portals_of([LEGACY], cloud=cloud).values()
    render_portal(legacy, tmp_path)
    document = json.loads((tmp_path / "legacy" / CONNECTOR_FILE).read_text())
    assert document["ewsUrl"] == CLOUDS[cloud].ews_url
    assert document[ConnectorKey.EXCHANGE_SERVER] == document["ewsUrl"]
    assert CLOUDS[cloud].ews_url in (tmp_path / "legacy" / SHEET_FILE).read_text()


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_every_endpoint_follows_the_portals_cloud(cloud, tmp_path):
    portals = portals_of([HR, OPS, LEGACY], cloud=cloud)
    render_all(list(portals.values()), tmp_path)
    this = CLOUDS[cloud]
    others = {host for c in CLOUDS.values() for host in (c.login, c.graph, c.exchange)}
    others -= {this.login, this.graph, this.exchange}
    for name in portals:
        files = [p for p in (tmp_path / name).iterdir()]
        for path in files:
            text = path.read_text()
            for host in others:
                assert host + "/" not in text and f'{host}"' not in text, (cloud, path.name, host)
        document = json.loads((tmp_path / name / CONNECTOR_FILE).read_text())
        tenant = document["tenantId"]
        assert document["authorityHost"] == this.login
        assert document["authority"] == f"{this.login}/{tenant}"
        assert document["tokenEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/token"
        assert document["authorizeEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/authorize"
        assert document["deviceCodeEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/devicecode"
        assert document["cloud"] == cloud
    assert json.loads((tmp_path / "ops" / CONNECTOR_FILE).read_text())["resource"] == this.graph
    assert json.loads((tmp_path / "hr" / CONNECTOR_FILE).read_text())["resource"] == this.exchange
    assert json.loads((tmp_path / "legacy" / CONNECTOR_FILE).read_text())["ewsUrl"] == this.ews_url
    provider = ElementTree.parse(tmp_path / "hr" / SIGN_IN_FILE).getroot().find("provider")
    assert provider.get("auth-access-token-url").startswith(this.login + "/")
    assert provider.get("auth-pub-keys-src").startswith(this.login + "/")
    assert provider.get("auth-user-info-url") == ""
    sheet = (tmp_path / "hr" / SHEET_FILE).read_text()
    assert re.search(re.escape(DEVICE_LOGIN[cloud]) + r"\b", sheet)
    script = (tmp_path / "ops" / RBAC_FILE).read_text()
    assert f"-ExchangeEnvironmentName {EXCHANGE_ENVIRONMENT[cloud]}" in script


def test_sign_in_provider_block_follows_the_intrexx_login_module(portals, rendered):
    hr = portals["hr"]
    root = ElementTree.parse(rendered["hr"] / SIGN_IN_FILE).getroot()
    assert root.tag == "oauth2" and root.get("name") == "entra-hr"
    assert root.find("provider").attrib == {
        "auth-grant-type": "authorization_code",
        "auth-scheme": "header",
        "auth-protocol": "id_token",
        "auth-requires-nonce": "true",
        "auth-access-token-url": hr.token_endpoint,
        "auth-user-auth-url": hr.authorize_endpoint,
        "auth-pub-keys-src": hr.jwks_uri,
        # Empty with the id_token protocol, as in United Planet's OpenID Connect sample (its README).
        "auth-user-info-url": "",
        "auth-scope": "openid email",
        "auth-client-id": hr.client_id,
        "auth-client-secret": hr.client_secret,
        "auth-redirect-url": hr.sign_in_redirect_uri,
        "auth-provider-prompt": "select_account",
        "auth-provider-login-hint": "",
    }
    assert root.find("mapping").attrib == {"db-field-name": "emailBiz", "provider-claim-fieldname": "email"}
    params = {p.get("key"): p.get("value") for p in root.find("additional-redirect-params")}
    assert params == {"response_type": "id_token", "response_mode": "form_post"}
    assert hr.sign_in_redirect_uri == "https://intrexx.example.com/hr/login/oic/authenticate"


def test_xml_special_characters_in_values_are_escaped(portals):
    hr = dataclasses.replace(portals["hr"], client_secret="a\"b<c>&d'e\tf")
    root = ElementTree.fromstring(oauth2_element(hr))
    assert root.find("provider").get("auth-client-secret") == "a\"b<c>&d'e\tf"


def test_the_sheet_walks_the_dialogs_in_order(portals, rendered):
    sheet = (rendered["hr"] / SHEET_FILE).read_text()
    titles = re.findall(r"^## \d+\. (.+)$", sheet, flags=re.MULTILINE)
    assert titles == [
        "MediaGateway connection",
        "Exchange account",
        "OAuth2",
        "Redirect URIs",
        "Request MS365 Refresh Token",
        "Client secret expiry and rotation",
        "EWS retirement",
        "Portal sign-in with Entra ID",
    ]
    hr = portals["hr"]
    for value in (
        hr.tenant_id,
        hr.client_id,
        *hr.redirect_uris,
        "8087",
        "9087",
        "gRPC",
        "CORBA",
        "MediaGateway password",
        "`Office365`",
        timestamp(hr.secret_expires_at),
        timestamp(hr.secret_rotates_at),
        "three months",
        "python -m intrexx_connector apply --portal hr",
    ):
        assert value in sheet, value
    assert f"in `{rendered['hr'] / CONNECTOR_FILE}`, field `clientSecret`" in sheet


def test_the_sheet_of_an_ews_portal_explains_the_retirement(portals, rendered):
    sheet = (rendered["legacy"] / SHEET_FILE).read_text()
    titles = re.findall(r"^## \d+\. (.+)$", sheet, flags=re.MULTILINE)
    assert titles[-1] == "EWS retirement"
    assert "2026-10-01" in sheet and "2027-04-01" in sheet
    assert f'Set-OrganizationConfig -EwsAllowedAppIDs @{{Add="{portals["legacy"].client_id}"}}' in sheet
    assert "EWSEnabled" in sheet and "connector: m365" in sheet


def test_the_sheet_of_an_application_portal_says_what_the_app_reaches(rendered):
    scoped = (rendered["ops"] / SHEET_FILE).read_text()
    assert "Request MS365 Refresh Token" not in scoped
    assert "Department -eq 'Ops'" in scoped and "intrexx-ops-dev" in scoped and RBAC_FILE in scoped
    grouped = (rendered["team"] / SHEET_FILE).read_text()
    assert TEAM["mailboxScope"]["groupId"] in grouped
    wide = (rendered["wide"] / SHEET_FILE).read_text()
    assert "Every mailbox of the tenant" in wide
    assert RBAC_FILE not in wide


def test_rbac_script_looks_before_it_creates(rendered):
    for name in ("ops", "team"):
        lines = (rendered[name] / RBAC_FILE).read_text().splitlines()
        news = [i for i, line in enumerate(lines) if re.search(r"\bNew-\w+", line)]
        assert news
        for index in news:
            noun = re.search(r"\bNew-(\w+)", lines[index]).group(1)
            assert any(f"Get-{noun}" in line for line in lines[:index]), lines[index]
        assert "$ErrorActionPreference = 'Stop'" in lines
        assert "Test-ServicePrincipalAuthorization" in lines[-2]


def test_rbac_script_assigns_one_role_per_exchange_rbac_permission(portals, rendered):
    ops = portals["ops"]
    script = (rendered["ops"] / RBAC_FILE).read_text()
    sp = ops.service_principal_object_id
    assert (
        f"New-ServicePrincipal -AppId '{ops.client_id}' -ObjectId '{sp}' -DisplayName 'Intrexx ops (dev)'"
    ) in script
    assert f"Get-ServicePrincipal -Identity '{sp}'" in script
    assert "New-ManagementScope -Name 'intrexx-ops-dev' -RecipientRestrictionFilter $filter" in script
    assert "$filter = 'Department -eq ''Ops'''" in script
    assert "Set-ManagementScope -Identity 'intrexx-ops-dev'" in script
    rbac = [p for p in ops.permissions if p.granted_by is GrantedBy.EXCHANGE_RBAC]
    assert len(rbac) == 3
    assignments = re.findall(
        r"New-ManagementRoleAssignment -Name '([^']+)' -App '([^']+)' -Role '([^']+)' "
        r"-CustomResourceScope 'intrexx-ops-dev'",
        script,
    )
    assert sorted(assignments) == sorted((role_assignment_name(ops, p), sp, p.exchange_role) for p in rbac)
    for name, _, _ in assignments:
        assert f"Get-ManagementRoleAssignment -Identity '{name}'" in script


def test_rbac_script_resolves_a_group_scope_at_run_time(rendered):
    script = (rendered["team"] / RBAC_FILE).read_text()
    assert f"Get-Group -Identity '{TEAM['mailboxScope']['groupId']}'" in script
    assert "MemberOfGroup -eq" in script and "DistinguishedName" in script


def test_powershell_quoting_doubles_every_kind_of_single_quote():
    assert ps_quote("O'Brien") == "'O''Brien'"
    assert ps_quote("a\u2019b") == "'a\u2019\u2019b'"
    assert ps_quote("$env:X") == "'$env:X'"


def test_exchange_names_fit_64_characters_and_stay_distinct():
    long_a = exchange_name("intrexx", "p" * 40, "e" * 64, "Mail.ReadWrite")
    long_b = exchange_name("intrexx", "p" * 40, "e" * 64, "Calendars.ReadWrite")
    assert len(long_a) <= 64 and len(long_b) <= 64
    assert long_a != long_b
    assert long_a == exchange_name("intrexx", "p" * 40, "e" * 64, "Mail.ReadWrite")
    assert exchange_name("intrexx", "ops", "dev") == "intrexx-ops-dev"


def test_placeholder_secrets_render_like_real_ones(portals, tmp_path):
    hr = dataclasses.replace(portals["hr"], client_secret="<placeholder: run render after pulumi up>")
    render_portal(hr, tmp_path)
    document = json.loads((tmp_path / "hr" / CONNECTOR_FILE).read_text())
    assert document[ConnectorKey.CLIENT_SECRET] == hr.client_secret


def test_rendering_without_the_secret_is_an_outputs_error(tmp_path):
    outputs = stack_outputs([HR])
    del outputs[CLIENT_SECRETS]
    (hr,) = parse_outputs(json.dumps(outputs), need_secrets=False)
    with pytest.raises(OutputsError, match="--show-secrets"):
        render_portal(hr, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_files_that_no_longer_apply_are_removed(portals, tmp_path):
    hr = portals["hr"]
    render_portal(hr, tmp_path)
    assert (tmp_path / "hr" / SIGN_IN_FILE).exists()
    without_sign_in = dataclasses.replace(hr, sign_in=False)
    render_portal(without_sign_in, tmp_path)
    assert not (tmp_path / "hr" / SIGN_IN_FILE).exists()


def test_rendering_prints_nothing_and_is_repeatable(portals, tmp_path, capsys):
    render_all(list(portals.values()), tmp_path / "a")
    render_all(list(portals.values()), tmp_path / "b")
    assert capsys.readouterr() == ("", "")
    for name in portals:
        for path in (tmp_path / "a" / name).iterdir():
            other = tmp_path / "b" / name / path.name
            if path.name == SHEET_FILE:
                assert path.read_text().replace(str(tmp_path / "a"), "") == other.read_text().replace(
                    str(tmp_path / "b"), ""
                )
            else:
                assert path.read_bytes() == other.read_bytes()
