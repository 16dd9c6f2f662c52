import dataclasses
import json
import os
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

import pytest
from outputs_fixtures import HR, OPS, stack_outputs

from intrexx_connector.errors import FileError, UsageError
from intrexx_connector.omcfg import LOGIN_MODULE, OM_CFG, apply_sign_in
from intrexx_connector.render import oauth2_element
from intrexx_connector.stack_outputs import parse_outputs

NOW = datetime(2026, 11, 24, 21, 53, 0, tzinfo=UTC)

# The shape of om.cfg in the Intrexx OAuth2/OpenID Connect login module README, with a second provider,
# comments and odd formatting that must survive byte for byte.
OM_CFG_TEXT = """<?xml version="1.0" encoding="UTF-8"?>
<!-- om.cfg of portal hr: edited by hand, keep this comment -->
<configuration>
   <authentication anonymous="05CE8CE3035924F7D3088895F1D87DADD65CFAE4">
      <binding scope="web" auth-type="IntrexxAuth"/>
      <binding scope="client"   auth-type="IntrexxAuth" />
      <binding scope="webservice" auth-type="IntrexxAuth"/>
      <webserver-configuration plain-text-auth="false" integrated-auth="false"/>
   </authentication>

   <oauth2 name="azuread">
        <provider
                auth-grant-type="authorization_code"
                auth-client-id="CLIENT_ID"
                auth-client-secret="OTHER_SECRET"
                auth-redirect-url="https://intrexxserver/login/oic/authenticate?a=1&amp;b=2"
        />
        <mapping db-field-name="emailBiz" provider-claim-fieldname="email"/>
   </oauth2>

   <security note='a>b'/>
   <organization default-container-guid="4B87C2470868AAB57BFB31958D1F73583FB3778E"
                 default-distlist-guid="4B87C2470868AAB57BFB31958D1F73583FB3778E"/>
</configuration>
"""

OLD_BLOCK = """<oauth2 name="entra-hr">
      <provider auth-client-id="11111111-1111-1111-1111-111111111111" auth-client-secret="OLD_SECRET"/>
   </oauth2>"""


@pytest.fixture(scope="module")
def hr():
    (portal,) = parse_outputs(json.dumps(stack_outputs([HR])))
    return portal


def om_cfg(portal_dir: Path, content: bytes | str, mode: int = 0o644) -> Path:
    path = portal_dir / OM_CFG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    os.chmod(path, mode)
    return path


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.*.bak"))


def our_provider(data: bytes) -> ElementTree.Element:
    root = ElementTree.fromstring(data)
    (ours,) = [e for e in root.findall("oauth2") if e.get("name") == "entra-hr"]
    return ours.find("provider")


def test_insertion_keeps_every_other_byte(hr, tmp_path):
    path = om_cfg(tmp_path, OM_CFG_TEXT)
    original = path.read_bytes()
    result = apply_sign_in(hr, tmp_path, now=NOW)
    assert result.changed and result.path == path
    updated = path.read_bytes()
    anchor = original.index(b"</oauth2>") + len(b"</oauth2>")
    assert updated[:anchor] == original[:anchor]
    assert updated.endswith(original[anchor:])
    inserted = updated[anchor : len(updated) - len(original) + anchor].decode("utf-8")
    assert inserted == "\n   " + oauth2_element(hr, indent="   ")
    assert our_provider(updated).get("auth-client-secret") == hr.client_secret
    root = ElementTree.fromstring(updated)
    assert [e.get("name") for e in root.findall("oauth2")] == ["azuread", "entra-hr"]


def test_the_block_goes_after_authentication_when_there_is_no_other_provider(hr, tmp_path):
    text = OM_CFG_TEXT.replace(OM_CFG_TEXT[OM_CFG_TEXT.index("   <oauth2") : OM_CFG_TEXT.index("   <security")], "")
    path = om_cfg(tmp_path, text)
    original = path.read_bytes()
    apply_sign_in(hr, tmp_path, now=NOW)
    updated = path.read_bytes()
    anchor = original.index(b"</authentication>") + len(b"</authentication>")
    assert updated[:anchor] == original[:anchor]
    assert updated.endswith(original[anchor:])
    assert updated[anchor : anchor + 7] == b"\n\n   <o"


def test_without_authentication_or_providers_the_block_goes_before_the_root_end(hr, tmp_path):
    text = '<?xml version="1.0"?>\n<configuration>\n  <security/>\n</configuration>\n'
    path = om_cfg(tmp_path, text)
    apply_sign_in(hr, tmp_path, now=NOW)
    updated = path.read_text()
    assert updated.startswith('<?xml version="1.0"?>\n<configuration>\n  <security/>\n  <oauth2 name="entra-hr">')
    assert updated.endswith("\n  </oauth2>\n</configuration>\n")
    assert our_provider(updated.encode()) is not None


def test_a_backup_of_the_original_is_written_first(hr, tmp_path):
    path = om_cfg(tmp_path, OM_CFG_TEXT)
    result = apply_sign_in(hr, tmp_path, now=NOW)
    assert result.backup == path.parent / "om.cfg.20261124T215300Z.bak"
    assert result.backup.read_bytes() == OM_CFG_TEXT.encode()
    assert backups(path) == [result.backup]


@pytest.mark.parametrize(("before", "after"), [(0o640, 0o640), (0o600, 0o600), (0o660, 0o660), (0o644, 0o640)])
def test_the_merged_file_and_its_backup_keep_om_cfg_s_mode_without_access_for_others(hr, tmp_path, before, after):
    """Intrexx's service group reads om.cfg (0640): it keeps reading it. Others lose what they had: it now holds a
    client secret."""
    path = om_cfg(tmp_path, OM_CFG_TEXT, mode=before)
    result = apply_sign_in(hr, tmp_path, now=NOW)
    assert path.stat().st_mode & 0o777 == after
    assert result.backup.stat().st_mode & 0o777 == after


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving files another owner needs root")
def test_om_cfg_its_backup_and_the_lock_keep_om_cfg_s_owner_when_root_applies(hr, tmp_path):
    path = om_cfg(tmp_path, OM_CFG_TEXT, mode=0o640)
    os.chown(path, 4321, 8765)
    result = apply_sign_in(hr, tmp_path, now=NOW)
    lock = path.with_name("om.cfg.lock")
    for written in (path, result.backup, lock):
        assert (written.stat().st_uid, written.stat().st_gid) == (4321, 8765), written.name
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_offline_plans_placeholder_secret_is_refused_before_anything_is_written(hr, tmp_path):
    from components.facts import PLACEHOLDER_SECRET
    from intrexx_connector.errors import OutputsError

    path = om_cfg(tmp_path, OM_CFG_TEXT)
    with pytest.raises(OutputsError, match="placeholder secret") as raised:
        apply_sign_in(dataclasses.replace(hr, client_secret=PLACEHOLDER_SECRET), tmp_path, now=NOW)
    assert "\n" not in str(raised.value) and PLACEHOLDER_SECRET not in str(raised.value)
    assert path.read_text() == OM_CFG_TEXT and sorted(p.name for p in path.parent.iterdir()) == ["om.cfg"]


def test_a_second_apply_changes_nothing(hr, tmp_path):
    path = om_cfg(tmp_path, OM_CFG_TEXT)
    apply_sign_in(hr, tmp_path, now=NOW)
    first = path.read_bytes()
    first_backups = backups(path)
    again = apply_sign_in(hr, tmp_path, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert again.changed is False and again.backup is None
    assert path.read_bytes() == first
    assert backups(path) == first_backups


def test_an_older_version_of_our_block_is_replaced_in_place(hr, tmp_path):
    text = OM_CFG_TEXT.replace("   <security", f"   {OLD_BLOCK}\n\n   <security")
    path = om_cfg(tmp_path, text)
    original = path.read_bytes()
    result = apply_sign_in(hr, tmp_path, now=NOW)
    updated = path.read_bytes()
    start = original.index(b'<oauth2 name="entra-hr">')
    end = original.index(b"</oauth2>", start) + len(b"</oauth2>")
    assert updated[:start] == original[:start]
    assert updated.endswith(original[end:])
    assert updated[start : len(updated) - len(original) + end].decode() == oauth2_element(hr, indent="   ")
    assert b"OLD_SECRET" not in updated and b"OTHER_SECRET" in updated
    assert b"OLD_SECRET" in result.backup.read_bytes()
    assert our_provider(updated).get("auth-client-id") == hr.client_id


def test_a_self_closing_old_block_is_replaced(hr, tmp_path):
    text = OM_CFG_TEXT.replace("   <security", '   <oauth2 name="entra-hr"/>\n   <security')
    path = om_cfg(tmp_path, text)
    apply_sign_in(hr, tmp_path, now=NOW)
    assert our_provider(path.read_bytes()).get("auth-client-secret") == hr.client_secret


def test_a_new_secret_is_merged_and_backups_are_never_overwritten(hr, tmp_path):
    path = om_cfg(tmp_path, OM_CFG_TEXT)
    first = apply_sign_in(hr, tmp_path, now=NOW)
    rotated = dataclasses.replace(hr, client_secret="rotated~secret")
    second = apply_sign_in(rotated, tmp_path, now=NOW)
    assert second.changed
    assert second.backup != first.backup
    assert second.backup.name == "om.cfg.20261124T215300Z.1.bak"
    assert first.backup.read_bytes() == OM_CFG_TEXT.encode()
    assert hr.client_secret.encode() in second.backup.read_bytes()
    assert our_provider(path.read_bytes()).get("auth-client-secret") == "rotated~secret"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<configuration><authentication></configuration>",
        b"not xml at all",
        b'<?xml version="1.0"?>\n<configuration>\n<oauth2 name="x">\n</configuration>',
    ],
)
def test_malformed_om_cfg_is_a_file_error_and_nothing_changes(hr, tmp_path, content):
    path = om_cfg(tmp_path, content)
    with pytest.raises(FileError, match="not well-formed") as caught:
        apply_sign_in(hr, tmp_path, now=NOW)
    assert hr.client_secret not in str(caught.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["om.cfg", "om.cfg.lock"]  # the lock file stays


def test_a_document_that_is_not_om_cfg_is_refused(hr, tmp_path):
    path = om_cfg(tmp_path, "<settings><oauth2/></settings>")
    with pytest.raises(FileError, match="root element"):
        apply_sign_in(hr, tmp_path, now=NOW)
    assert path.read_text() == "<settings><oauth2/></settings>"


def test_two_blocks_of_ours_are_refused(hr, tmp_path):
    text = OM_CFG_TEXT.replace("   <security", f"   {OLD_BLOCK}\n   {OLD_BLOCK}\n   <security")
    path = om_cfg(tmp_path, text)
    with pytest.raises(FileError, match="2 <oauth2"):
        apply_sign_in(hr, tmp_path, now=NOW)
    assert path.read_text() == text
    assert backups(path) == []


def test_missing_om_cfg_is_a_file_error_and_nothing_is_created(hr, tmp_path):
    with pytest.raises(FileError, match="does not exist"):
        apply_sign_in(hr, tmp_path, now=NOW)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "internal" / "cfg").mkdir(parents=True)
    with pytest.raises(FileError, match="does not exist"):
        apply_sign_in(hr, tmp_path, now=NOW)
    assert list((tmp_path / "internal" / "cfg").iterdir()) == []


def test_a_crash_while_writing_keeps_om_cfg_intact(hr, tmp_path, monkeypatch):
    path = om_cfg(tmp_path, OM_CFG_TEXT)
    real_replace = os.replace

    def crash_on_om_cfg(src, dst):
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_om_cfg)
    with pytest.raises(FileError):
        apply_sign_in(hr, tmp_path, now=NOW)
    assert path.read_text() == OM_CFG_TEXT
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_crlf_files_stay_crlf(hr, tmp_path):
    content = OM_CFG_TEXT.replace("\n", "\r\n").encode()
    path = om_cfg(tmp_path, content)
    apply_sign_in(hr, tmp_path, now=NOW)
    updated = path.read_bytes()
    assert updated.count(b"\n") == updated.count(b"\r\n")
    assert updated.startswith(content[: content.index(b"</oauth2>")])


def test_a_latin1_file_keeps_its_bytes(hr, tmp_path):
    text = OM_CFG_TEXT.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').replace(
        "keep this comment", "Grüße, bitte behalten"
    )
    content = text.encode("iso-8859-1")
    path = om_cfg(tmp_path, content)
    apply_sign_in(hr, tmp_path, now=NOW)
    updated = path.read_bytes()
    anchor = content.index(b"</oauth2>") + len(b"</oauth2>")
    assert updated[:anchor] == content[:anchor]
    assert updated.endswith(content[anchor:])
    assert our_provider(updated) is not None


def test_manual_steps_name_what_the_command_leaves_to_the_administrator(hr, tmp_path):
    om_cfg(tmp_path, OM_CFG_TEXT)
    steps = apply_sign_in(hr, tmp_path, now=NOW).manual_steps
    text = "\n".join(steps)
    assert "LucyAuth.cfg" in text
    assert '<binding scope="web" auth-type="IntrexxOAuth2"/>' in text
    assert "Restart the portal server" in text
    assert hr.sign_in_redirect_uri in text and "registered already" in text
    assert hr.client_secret not in text
    root = ElementTree.fromstring((tmp_path / OM_CFG).read_bytes())
    web = [b for b in root.iterfind("authentication/binding") if b.get("scope") == "web"]
    assert web[0].get("auth-type") == "IntrexxAuth"


def test_manual_steps_skip_what_is_done_already(hr, tmp_path):
    om_cfg(tmp_path, OM_CFG_TEXT.replace('"web" auth-type="IntrexxAuth"', '"web" auth-type="IntrexxOAuth2"'))
    lucy_auth = f"IntrexxOAuth2\n{{\n    {LOGIN_MODULE} sufficient;\n}};\n"
    (tmp_path / "internal" / "cfg" / "LucyAuth.cfg").write_text(lucy_auth)
    text = "\n".join(apply_sign_in(hr, tmp_path, now=NOW).manual_steps)
    assert "Declare the login module" not in text
    assert "Switch web login" not in text
    assert "Restart the portal server" in text


def test_portals_without_sign_in_are_a_usage_error(tmp_path):
    (ops,) = parse_outputs(json.dumps(stack_outputs([OPS])))
    om_cfg(tmp_path, OM_CFG_TEXT)
    with pytest.raises(UsageError, match="signIn"):
        apply_sign_in(ops, tmp_path, now=NOW)
    assert (tmp_path / OM_CFG).read_text() == OM_CFG_TEXT
