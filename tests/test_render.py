import dataclasses
import json
import re
import xml.etree.ElementTree as ElementTree

import pytest
from helpers import TODAY
from outputs_fixtures import HR, LEGACY, OPS, SAMPLE_PORTALS, TEAM, USERS, WIDE, stack_outputs

from components.clouds import CLOUDS
from components.contract import CLIENT_SECRETS, timestamp
from components.ews import ews_state
from intrexx_connector.cli import main
from intrexx_connector.errors import OutputsError
from intrexx_connector.render import (
    CONNECTOR_FILE,
    EWS_ALLOW_LIST_FILE,
    M365_CONNECTOR_FILE,
    RBAC_FILE,
    SHEET_FILE,
    SIGN_IN_FILE,
    ConnectorKey,
    connector_file_name,
    exchange_name,
    left_behind,
    oauth2_element,
    portal_files,
    ps_quote,
    registration_name,
    render_all,
    render_portal,
)
from intrexx_connector.stack_outputs import parse_outputs

ALL_PORTALS = [*SAMPLE_PORTALS, TEAM, WIDE, USERS]
SECRET_FILES = (CONNECTOR_FILE, M365_CONNECTOR_FILE, SIGN_IN_FILE)
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
    render_all(list(portals.values()), tmp_path, TODAY)
    return {name: tmp_path / name for name in portals}


def mode_of(path) -> int:
    return path.stat().st_mode & 0o777


def test_each_portal_gets_the_files_that_apply_to_it(portals, tmp_path):
    written = render_all(list(portals.values()), tmp_path, TODAY)
    names = {portal: sorted(p.name for p in paths) for portal, paths in written.items()}
    assert names == {
        "hr": sorted([CONNECTOR_FILE, SHEET_FILE, EWS_ALLOW_LIST_FILE, SIGN_IN_FILE]),
        "legacy": sorted([CONNECTOR_FILE, SHEET_FILE, EWS_ALLOW_LIST_FILE]),
        "ops": sorted([M365_CONNECTOR_FILE, SHEET_FILE, RBAC_FILE]),
        "team": sorted([M365_CONNECTOR_FILE, SHEET_FILE, RBAC_FILE]),
        "wide": sorted([M365_CONNECTOR_FILE, SHEET_FILE, RBAC_FILE]),
        "users": sorted([M365_CONNECTOR_FILE, SHEET_FILE]),
    }
    for portal, paths in written.items():
        assert sorted(p.name for p in (tmp_path / portal).iterdir()) == sorted(p.name for p in paths)


def test_secret_files_are_0600_and_the_others_0644(rendered):
    for directory in rendered.values():
        for path in directory.iterdir():
            expected = 0o600 if path.name in SECRET_FILES else 0o644
            assert mode_of(path) == expected, path


def test_the_secret_is_only_in_the_secret_files(portals, rendered):
    for name, directory in rendered.items():
        secret = portals[name].client_secret
        assert secret in (directory / connector_file_name(portals[name])).read_text()
        for path in directory.iterdir():
            assert (secret in path.read_text()) == (path.name in SECRET_FILES), path


def test_the_connector_file_is_named_after_the_connector(portals):
    assert {name: connector_file_name(p) for name, p in portals.items()} == {
        "hr": CONNECTOR_FILE,
        "legacy": CONNECTOR_FILE,
        "ops": M365_CONNECTOR_FILE,
        "team": M365_CONNECTOR_FILE,
        "wide": M365_CONNECTOR_FILE,
        "users": M365_CONNECTOR_FILE,
    }


def test_exchange_connector_json_holds_everything_the_connector_needs(portals, rendered):
    hr = portals["hr"]
    document = json.loads((rendered["hr"] / CONNECTOR_FILE).read_text())
    assert document[ConnectorKey.SCHEMA_VERSION] == 1
    assert document["portal"] == "hr" and document["connector"] == "exchange"
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


def test_m365_connector_json_has_the_same_schema_without_the_exchange_connectors_keys(portals, rendered):
    exchange = json.loads((rendered["hr"] / CONNECTOR_FILE).read_text())
    for name in ("ops", "users"):
        document = json.loads((rendered[name] / M365_CONNECTOR_FILE).read_text())
        assert document[ConnectorKey.SCHEMA_VERSION] == 1 and document["connector"] == "m365"
        assert document[ConnectorKey.CLIENT_SECRET] == portals[name].client_secret
        for key in ("ewsUrl", ConnectorKey.EXCHANGE_SERVER, ConnectorKey.MEDIA_GATEWAY):
            assert key not in document, key
        # Same keys otherwise, in the same order.
        shared = [
            key for key in exchange if key not in ("ewsUrl", "signInRedirectUri", "exchangeServer", "mediaGateway")
        ]
        assert [key for key in document if key != "mailboxScope"] == shared
    assert json.loads((rendered["ops"] / M365_CONNECTOR_FILE).read_text())["mailboxScope"] == OPS["mailboxScope"]


@pytest.mark.parametrize("cloud", ["usgovernment", "dod", "china"])
def test_exchange_portals_in_a_national_cloud_name_its_ews_endpoint(cloud, tmp_path):
    (legacy,) = portals_of([LEGACY], cloud=cloud).values()
    render_portal(legacy, tmp_path, TODAY)
    document = json.loads((tmp_path / "legacy" / CONNECTOR_FILE).read_text())
    assert document["ewsUrl"] == CLOUDS[cloud].ews_url
    assert document[ConnectorKey.EXCHANGE_SERVER] == document["ewsUrl"]
    assert CLOUDS[cloud].ews_url in (tmp_path / "legacy" / SHEET_FILE).read_text()


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_every_endpoint_follows_the_portals_cloud(cloud, tmp_path):
    portals = portals_of([HR, OPS, LEGACY], cloud=cloud)
    render_all(list(portals.values()), tmp_path, TODAY)
    this = CLOUDS[cloud]
    others = {host for c in CLOUDS.values() for host in (c.login, c.graph, c.exchange)}
    others -= {this.login, this.graph, this.exchange}
    for name in portals:
        files = [p for p in (tmp_path / name).iterdir()]
        for path in files:
            text = path.read_text()
            for host in others:
                assert host + "/" not in text and f'{host}"' not in text, (cloud, path.name, host)
        document = json.loads((tmp_path / name / connector_file_name(portals[name])).read_text())
        tenant = document["tenantId"]
        assert document["authorityHost"] == this.login
        assert document["authority"] == f"{this.login}/{tenant}"
        assert document["tokenEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/token"
        assert document["authorizeEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/authorize"
        assert document["deviceCodeEndpoint"] == f"{this.login}/{tenant}/oauth2/v2.0/devicecode"
        assert document["cloud"] == cloud
    assert json.loads((tmp_path / "ops" / M365_CONNECTOR_FILE).read_text())["resource"] == this.graph
    assert json.loads((tmp_path / "hr" / CONNECTOR_FILE).read_text())["resource"] == this.exchange
    assert json.loads((tmp_path / "legacy" / CONNECTOR_FILE).read_text())["ewsUrl"] == this.ews_url
    provider = ElementTree.parse(tmp_path / "hr" / SIGN_IN_FILE).getroot().find("provider")
    assert provider.get("auth-access-token-url").startswith(this.login + "/")
    assert provider.get("auth-pub-keys-src").startswith(this.login + "/")
    sheet = (tmp_path / "hr" / SHEET_FILE).read_text()
    assert re.search(re.escape(DEVICE_LOGIN[cloud]) + r"\b", sheet)
    for script in (tmp_path / "ops" / RBAC_FILE, tmp_path / "hr" / EWS_ALLOW_LIST_FILE):
        assert f"-ExchangeEnvironmentName {EXCHANGE_ENVIRONMENT[cloud]}" in script.read_text()


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


def sections_of(sheet: str) -> list[str]:
    return re.findall(r"^## \d+\. (.+)$", sheet, flags=re.MULTILINE)


def section(sheet: str, title: str) -> str:
    return re.search(rf"^## \d+\. {re.escape(title)}\n(.*?)(?=^## |\Z)", sheet, flags=re.MULTILINE | re.S).group(1)


def test_the_exchange_sheet_walks_the_data_source_dialogs_in_order(portals, rendered):
    sheet = (rendered["hr"] / SHEET_FILE).read_text()
    assert sheet.startswith("# Intrexx hr \\(dev\\): Connector for Microsoft Exchange\n")
    assert sections_of(sheet) == [
        "Before you start",
        "General (connection to the MediaGateway)",
        "Exchange account",
        "OAuth2",
        "Redirect URIs",
        "Request MS365 Refresh Token",
        "EWS allow list",
        "Client secret expiry and rotation",
        "Portal sign-in with Entra ID",
    ]
    hr = portals["hr"]
    for value in (
        hr.tenant_id,
        hr.client_id,
        *hr.redirect_uris,
        "`Office365`",
        timestamp(hr.secret_expires_at),
        timestamp(hr.secret_rotates_at),
        "three months",
        "python -m intrexx_connector apply --stack dev --portal hr",
    ):
        assert value in sheet, value
    assert f"in `{rendered['hr'] / CONNECTOR_FILE}`, field `clientSecret`" in sheet
    assert sections_of((rendered["legacy"] / SHEET_FILE).read_text())[-1] == "Client secret expiry and rotation"


def test_the_exchange_sheet_fills_in_the_mediagateway_connection_tab(rendered):
    sheet = (rendered["hr"] / SHEET_FILE).read_text()
    rows = dict(
        re.findall(r"^\| ([^|]+?) \| (.+) \|$", section(sheet, "General (connection to the MediaGateway)"), re.M)
    )
    assert list(rows)[2:] == [
        "Connection name",
        "Host",
        "Port",
        "Time zone",
        "use gRPC instead of CORBA (classic)",
        "Use SSL",
        "SSL port",
        "Password / Change password",
    ]
    assert "`Exchange Online hr (dev)`" in rows["Connection name"]
    assert rows["Port"] == "`8087`" and rows["SSL port"].startswith("`9087`")
    assert rows["use gRPC instead of CORBA (classic)"].startswith("on") and rows["Use SSL"].startswith("on")
    assert "MediaGateway password" in rows["Password / Change password"]
    before = section(sheet, "Before you start")
    assert "separate service" in before and "`8087`" in before and "`9087` with SSL" in before
    assert "Microsoft 365 permissions management" in before


def test_the_exchange_sheet_sends_users_to_their_clouds_device_login_page(rendered):
    steps = section((rendered["hr"] / SHEET_FILE).read_text(), "Request MS365 Refresh Token")
    assert "**Request MS365 Refresh Token**" in steps and "https://microsoft.com/devicelogin" in steps
    assert "AADSTS7000218" in steps


def test_the_ews_section_points_at_the_script_not_at_a_command_that_replaces_the_list(portals, rendered):
    sheet = (rendered["legacy"] / SHEET_FILE).read_text()
    ews = section(sheet, "EWS allow list")
    assert " ".join(ews_state(TODAY).split()) in " ".join(ews.split())
    assert f"`{EWS_ALLOW_LIST_FILE}` beside this sheet" in ews and portals["legacy"].client_id in ews
    assert "replaces the whole list" in ews and "connector: m365" in ews
    assert "@{Add=" not in sheet and "Set-OrganizationConfig -EWSEnabled $true" not in sheet


def test_the_rotation_steps_are_exact_commands(portals, rendered):
    hr = section((rendered["hr"] / SHEET_FILE).read_text(), "Client secret expiry and rotation")
    assert "`python -m intrexx_connector render --stack dev` writes the new secret into " in hr
    assert "`build/dev/hr/exchange-connector.json`, field `clientSecret`" in hr
    assert "`pulumi up --stack dev`" in hr
    assert "apply --stack dev --portal hr --portal-dir <portal directory>" in hr and "restart the portal" in hr
    assert f"until the next rotation (`{portals['hr'].secret_rotates_at}`)" in hr
    legacy = section((rendered["legacy"] / SHEET_FILE).read_text(), "Client secret expiry and rotation")
    assert "apply" not in legacy and "restart" not in legacy
    ops = section((rendered["ops"] / SHEET_FILE).read_text(), "Client secret expiry and rotation")
    assert "`build/dev/ops/m365-connector.json`" in ops
    assert "TODO" not in "".join(path.read_text() for d in rendered.values() for path in d.iterdir())


def test_the_m365_sheet_of_user_accounts_gives_the_registration_and_how_users_sign_in(portals, rendered):
    sheet = (rendered["users"] / SHEET_FILE).read_text()
    assert sheet.startswith("# Intrexx users \\(dev\\): Connector for Microsoft 365 and Teams\n")
    assert sections_of(sheet) == [
        "New registration - General",
        "Values from Microsoft Entra ID",
        "How users sign in (user accounts)",
        "Redirect URIs",
        "Client secret expiry and rotation",
    ]
    users = portals["users"]
    general = section(sheet, "New registration - General")
    assert f"`{registration_name(users)}`" in general and re.fullmatch(r"[A-Za-z0-9]+", registration_name(users))
    assert 'must be one of the URIs in section "Redirect URIs"' in general
    assert users.redirect_uris == ("https://users.example.com/" + USERS["redirectPaths"][0],)
    assert f"- `{users.redirect_uris[0]}`" in section(sheet, "Redirect URIs")
    values = section(sheet, "Values from Microsoft Entra ID")
    assert users.client_id in values and users.tenant_id in values and M365_CONNECTOR_FILE in values
    sign_in = section(sheet, "How users sign in (user accounts)")
    assert "Login to Microsoft 365 via the browser" in sign_in and "Login via a static user account" in sign_in
    assert "MediaGateway" not in sheet and "Request MS365 Refresh Token" not in sheet


def test_the_m365_sheet_of_a_service_account_says_what_the_app_reaches(rendered):
    scoped = (rendered["ops"] / SHEET_FILE).read_text()
    reach = section(scoped, "What the app can reach (service account)")
    assert "Login via a service account" in reach and "Scoped:" in reach
    assert "Department -eq 'Ops'" in reach and "intrexx-ops-dev" in reach and RBAC_FILE in reach
    assert "Redirect URIs" not in sections_of(scoped)
    grouped = (rendered["team"] / SHEET_FILE).read_text()
    assert TEAM["mailboxScope"]["groupId"] in grouped and "direct members only" in grouped
    wide = section((rendered["wide"] / SHEET_FILE).read_text(), "What the app can reach (service account)")
    assert (
        "Tenant-wide: every mailbox of the tenant" in wide and f"`{RBAC_FILE}` beside this sheet only cleans up" in wide
    )


def test_powershell_quoting_keeps_values_ascii_and_inside_their_strings():
    assert ps_quote("O'Brien") == "'O''Brien'"
    assert ps_quote("$env:X") == "'$env:X'"
    # Typographic quotes and every other non-ASCII character become code units (tests/test_hostile_render.py).
    assert ps_quote("a\u2019b") == "('a' + [char]0x2019 + 'b')"
    assert ps_quote("\u00d2;") == "('' + [char]0x00D2 + ';')"


def test_exchange_names_fit_64_characters_and_stay_distinct():
    long_a = exchange_name("intrexx", "p" * 40, "e" * 64, "Mail.ReadWrite")
    long_b = exchange_name("intrexx", "p" * 40, "e" * 64, "Calendars.ReadWrite")
    assert len(long_a) <= 64 and len(long_b) <= 64
    assert long_a != long_b
    assert long_a == exchange_name("intrexx", "p" * 40, "e" * 64, "Mail.ReadWrite")
    assert exchange_name("intrexx", "ops", "dev") == "intrexx-ops-dev"


def test_placeholder_secrets_render_like_real_ones(portals, tmp_path):
    hr = dataclasses.replace(portals["hr"], client_secret="<placeholder: run render after pulumi up>")
    render_portal(hr, tmp_path, TODAY)
    document = json.loads((tmp_path / "hr" / CONNECTOR_FILE).read_text())
    assert document[ConnectorKey.CLIENT_SECRET] == hr.client_secret


def test_rendering_without_the_secret_is_an_outputs_error(tmp_path):
    outputs = stack_outputs([HR])
    del outputs[CLIENT_SECRETS]
    (hr,) = parse_outputs(json.dumps(outputs), need_secrets=False)
    with pytest.raises(OutputsError, match="intrexx-connector outputs"):
        render_portal(hr, tmp_path, TODAY)
    assert list(tmp_path.iterdir()) == []


def test_files_that_no_longer_apply_are_removed(portals, tmp_path):
    hr = portals["hr"]
    render_portal(hr, tmp_path, TODAY)
    assert (tmp_path / "hr" / SIGN_IN_FILE).exists()
    without_sign_in = dataclasses.replace(hr, sign_in=False)
    render_portal(without_sign_in, tmp_path, TODAY)
    assert not (tmp_path / "hr" / SIGN_IN_FILE).exists()
    # A portal that moves from the Exchange connector to the Microsoft 365 connector (same name) loses the
    # Exchange files; an m365 portal that stops being a service account loses its RBAC script.
    moved = dataclasses.replace(portals["ops"], portal="hr")
    render_portal(moved, tmp_path, TODAY)
    assert sorted(p.name for p in (tmp_path / "hr").iterdir()) == sorted([M365_CONNECTOR_FILE, SHEET_FILE, RBAC_FILE])
    render_portal(dataclasses.replace(portals["users"], portal="hr"), tmp_path, TODAY)
    assert sorted(p.name for p in (tmp_path / "hr").iterdir()) == sorted([M365_CONNECTOR_FILE, SHEET_FILE])


def test_portal_files_says_what_render_portal_writes(portals, tmp_path):
    for portal in portals.values():
        files = portal_files(portal, tmp_path / portal.name, TODAY)
        written = render_portal(portal, tmp_path, TODAY)
        assert [path.name for path in written] == list(files)
        for path in written:
            text, mode = files[path.name]
            assert path.read_text() == text and mode_of(path) == mode


def test_rendering_prints_nothing_and_is_repeatable(portals, tmp_path, capsys):
    render_all(list(portals.values()), tmp_path / "a", TODAY)
    render_all(list(portals.values()), tmp_path / "b", TODAY)
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


def test_the_sheets_name_the_stack_they_were_rendered_for(portals, tmp_path):
    """`render --stack S` names S; without --stack, the outputs' environment (the stack's name unless the stack
    sets another environment)."""
    hr = portals["hr"]
    named = portal_files(hr, tmp_path / "hr", TODAY, "prod-eu")[SHEET_FILE][0]
    assert "`pulumi up --stack prod-eu`" in named and "`build/prod-eu/hr/exchange-connector.json`" in named
    assert "<stack>" not in named
    default = portal_files(hr, tmp_path / "hr", TODAY)[SHEET_FILE][0]
    assert f"`pulumi up --stack {hr.environment}`" in default and "<stack>" not in default


def test_render_names_the_folders_of_portals_it_no_longer_renders(portals, tmp_path, capsys):
    render_all(list(portals.values()), tmp_path, TODAY)
    (tmp_path / "unrelated").mkdir()
    kept = [p for p in portals.values() if p.name != "ops"]
    assert left_behind(kept, tmp_path) == [tmp_path / "ops"]
    assert (tmp_path / "ops" / "m365-connector.json").exists(), "render names the folder, it does not delete it"
    outputs = tmp_path / "outputs.json"
    document = stack_outputs(SAMPLE_PORTALS)
    del document["portals"]["ops"], document["clientSecrets"]["ops"]
    outputs.write_text(json.dumps(document))
    assert main(["render", "--outputs", str(outputs), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"left behind: {tmp_path / 'ops'}/ belongs to no portal of these outputs" in out
    assert "unrelated" not in out
