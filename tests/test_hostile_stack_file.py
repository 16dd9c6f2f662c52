"""The stack file read as Pulumi reads it (issue 17, items 7 and 8; issue 18, item 8): go-yaml v3's YAML 1.2 core
schema and the strings Pulumi hands the program (components/stack_file.py names the sources), repeated keys
refused, every key checked whatever its value, and the program's values from `pulumi.Config` only."""

import json

import pytest
from helpers import ROOT, TODAY
from test_simulation import read_settings_under_pulumi

from components.config import ConfigError
from components.stack_file import StackFileError, load_yaml, pulumi_text, read_stack_file
from intrexx_connector.cli import main

HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
PORTALS = f"  intrexx-exchange:portals: [{json.dumps(HR)}]\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY.isoformat())
    monkeypatch.delenv("ARM_ENVIRONMENT", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    return tmp_path


def plan(project, capsys, text: str, *extra: str) -> tuple[int, str, str]:
    (project / "Pulumi.attack.yaml").write_text(text)
    code = main(["plan", "--stack", "attack", *(extra or ["--json"])])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def text_of(scalar: str) -> str | None:
    """What `pulumi.Config.get` returns under `pulumi up` for `key: <scalar>`."""
    return pulumi_text(load_yaml(f"key: {scalar}\n", "test.yaml")["key"])


# What go-yaml v3 makes of a scalar, and the string Pulumi hands over (resolve.go, config/object.go) --------------

SCALARS = {
    "030": "24",  # go-yaml keeps YAML 1.1's octal: strconv.ParseInt("030", 0, 64)
    "0x1e": "30",
    "0X1E": "30",
    "0o36": "30",
    "0b11110": "30",
    "3_0": "30",
    "+30": "30",
    "30.0": "30",  # a float; Go's JSON prints it without a fraction
    "3e1": "30",
    "08": "8",  # not octal, so YAML's float pattern takes it
    "1:00": "1:00",  # YAML 1.1's sexagesimal number is text in YAML 1.2
    "yes": "yes",
    "on": "on",
    "True": "true",
    "FALSE": "false",
    "~": "null",
    "null": "null",
    "'030'": "030",
    '"0x1e"': "0x1e",
    "|\n  text": "text\n",
    "2026-01-01": "2026-01-01 00:00:00 +0000 UTC",  # Go's time.Time.String()
    "2026-13-45": "2026-13-45",  # no date: text
    "!!str 30": "30",
    "!!float 30": "30",
    "!!binary aGVsbG8=": "hello",
    "!custom 30": "30",  # a tag of its own: go-yaml keeps the text
    "1" * 5000: "1" * 5000,  # too large for an int64 or a float64: text
    "1e400": "1e400",
    "18446744073709551615": "18446744073709551615",  # a uint64
    "[1, 2.0, x]": '[1,2,"x"]',
    "{b: 1, a: [true]}": '{"a":[true],"b":1}',
}


@pytest.mark.parametrize("scalar, handed_over", SCALARS.items(), ids=[s[:24] for s in SCALARS])
def test_each_value_is_the_string_pulumi_hands_the_program(scalar, handed_over):
    assert text_of(scalar) == handed_over


@pytest.mark.parametrize(
    "text, message",
    [
        ("!!int abc", "line 1, column 6: cannot decode !!str `abc` as a !!int"),
        ("!!timestamp 2026-13-45", "cannot decode !!str `2026-13-45` as a !!timestamp"),
        ("!!bool yes", "cannot decode !!str `yes` as a !!bool"),
        ("!!null 0", "cannot decode !!int `0` as a !!null"),
        ("!!int " + "9" * 5000, "cannot decode !!str `" + "9" * 37 + "...` as a !!int"),
        ("!!binary 'not base64!'", "!!binary value contains invalid base64 data"),
    ],
)
def test_a_tag_the_text_does_not_fit_is_one_line_naming_file_line_and_column(text, message):
    with pytest.raises(StackFileError) as caught:
        load_yaml(f"key: {text}\n", "Pulumi.x.yaml")
    assert str(caught.value).startswith("Pulumi.x.yaml, line 1") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_rotation_days_in_plan_are_what_pulumi_up_gets(project, capsys):
    for written, days in (("030", 24), ("0x1e", 30), ("3_0", 30), ("0b11110", 30), ("30.0", 30), ("'030'", 30)):
        code, out, err = plan(project, capsys, f"config:\n{PORTALS}  intrexx-exchange:secretRotationDays: {written}\n")
        assert code == 0, (written, err)
        expires = json.loads(out)["portals"]["hr"]["secrets"]
        assert expires, written
        document = read_stack_file(project / "Pulumi.attack.yaml")
        assert int(document.values("intrexx-exchange")["secretRotationDays"]) == days, written
    code, _, err = plan(project, capsys, f"config:\n{PORTALS}  intrexx-exchange:secretRotationDays: 1:00\n")
    assert code == 2 and "secretRotationDays: must be an integer from" in err and "'1:00'" in err


@pytest.mark.parametrize(
    "text, message",
    [
        (
            f"config:\n{PORTALS}{PORTALS}",
            "line 3, column 3: key 'intrexx-exchange:portals' is given twice (first on line 2)",
        ),
        ("config: {}\nconfig: {}\n", "key 'config' is given twice"),
        (
            "config:\n  intrexx-exchange:portals:\n    - name: hr\n      baseUrl: https://a.example.com\n"
            "      name: ops\n",
            "line 5, column 7: key 'name' is given twice (first on line 3)",
        ),
        (f"config:\n{PORTALS}  portals: []\n", "is 'intrexx-exchange:portals', which is given twice"),
        (f"config:\n{PORTALS}  intrexx-exchange:config:portals: []\n", "which is given twice"),
        ("config:\n  a:b:c: 1\n", "config key 'a:b:c' is not of the form '<namespace>:<name>'"),
        ("config:\n  1: x\n", "mapping keys must be text, got '1'"),
        ("config:\n  ? [a]\n  : x\n", "mapping keys must be text, got a list"),
        ("config:\n  intrexx-exchange:environment: .nan\n", "holds .nan or .inf, which Pulumi cannot pass on"),
        ("config:\n  intrexx-exchange:portals: &a [*a]\n", "a YAML alias refers to a node that contains it"),
        ("config:\n  intrexx-exchange:environment: a\x00b\n", "unacceptable character #x0000"),
        ("config:\n  intrexx-exchange:environment: a\x1bb\n", "unacceptable character #x001b"),
    ],
)
def test_what_pulumi_refuses_plan_refuses_in_one_line(project, capsys, text, message):
    code, out, err = plan(project, capsys, text, "--portal", "hr")
    assert code == 2 and out == ""
    assert err.startswith("StackFileError: Pulumi.attack.yaml") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_what_pulumi_passes_on_plan_passes_on(project, capsys):
    """Texts PyYAML's YAML 1.1 read refused or read otherwise; Pulumi passes them to the program."""
    base = (
        "defaults: &defaults {connector: exchange}\n"
        "config:\n"
        "  intrexx-exchange:portals:\n"
        "    - <<: *defaults\n"
        "      name: hr\n"
        "      baseUrl: https://intrexx.example.com/hr\n"
        "  intrexx-exchange:environment: !!binary UHJvZHVrdGlvbg==\n"
        "  intrexx-exchange:protect: True\n"
    )
    code, out, err = plan(project, capsys, base)
    assert code == 0, err
    document = json.loads(out)
    assert document["portals"]["hr"]["connector"] == "exchange"
    assert document["portals"]["hr"]["displayName"] == "Intrexx hr (Produktion)"
    code, out, err = plan(project, capsys, base.replace("!!binary UHJvZHVrdGlvbg==", "2026-01-01"))
    assert code == 0 and "Intrexx hr (2026-01-01 00:00:00 +0000 UTC)" in out, err


def test_a_python_tag_runs_nothing_and_is_read_as_go_yaml_reads_it(project, capsys, tmp_path):
    """go-yaml ignores a tag on a sequence: the value is the list, which Pulumi hands over as JSON text."""
    code, out, err = plan(
        project, capsys, f"config:\n{PORTALS}  intrexx-exchange:environment: !!python/object/apply:os.system ['id']\n"
    )
    assert code == 0 and 'Intrexx hr ([\\"id\\"])' in out, err


# Every key checked, whatever its value -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "intrexx-exchange:portalz",
            "{secure: AAABAGV4YW1wbGU=}",
            "intrexx-exchange:portalz: unknown key (did you mean 'portals'?)",
        ),
        ("intrexx-exchange:enviroment", "{secure: AAAB}", "did you mean 'environment'?"),
        (
            "Intrexx-Exchange:protect",
            "true",
            "unknown namespace 'Intrexx-Exchange' (keys are case-sensitive); did you mean 'intrexx-exchange:protect'?",
        ),
        ("INTREXX-EXCHANGE:portalz", "x", "did you mean 'intrexx-exchange:portalz'?"),
        ("AzureAD:environment", "usgovernment", "did you mean 'azuread:environment'?"),
        ("intrexx-exchang:protect", "{secure: AAAB}", "did you mean 'intrexx-exchange:protect'?"),
        ("portalz", "[]", "intrexx-exchange:portalz: unknown key (did you mean 'portals'?)"),
        ("intrexx-exchange:config:portalz", "[]", "intrexx-exchange:portalz: unknown key"),
    ],
)
def test_a_misspelt_key_is_named_whatever_its_value(project, capsys, key, value, message):
    code, _, err = plan(project, capsys, f"config:\n{PORTALS}  {key}: {value}\n")
    assert code == 2 and message in err, err


# Values from pulumi.Config only; the stack file judged only when it is what Pulumi read ----------------------


def test_under_config_file_the_stack_file_adds_nothing_and_is_not_judged(project):
    """`pulumi up --config-file ci.yaml` hands over ci.yaml's keys only: the stack file's environment, protect,
    portals and misspelt keys are not the run's."""
    (project / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  intrexx-exchange:portals: [{name: ops, baseUrl: https://ops.example.com}]\n"
        "  intrexx-exchange:environment: from-the-stack-file\n"
        "  intrexx-exchange:protect: true\n"
        "  intrexx-exchange:portalz: oops\n"
    )
    settings = read_settings_under_pulumi({"intrexx-exchange:portals": json.dumps([HR])})
    assert [p.name for p in settings.portals] == ["hr"]
    assert settings.environment == "dev" and settings.protect is False
    with pytest.raises(ConfigError, match="portals: required"):
        read_settings_under_pulumi({"intrexx-exchange:environment": "ci"})


def test_when_pulumi_read_the_stack_file_its_keys_are_judged(project):
    (project / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  intrexx-exchange:portals: [{name: hr, baseUrl: 'https://intrexx.example.com/hr'}]\n"
        "  intrexx-exchange:secretRotationDays: 0x1e\n"
        "  intrexx-exchange:portalz: {secure: AAAB}\n"
    )
    handed_over = {"intrexx-exchange:portals": json.dumps([HR]), "intrexx-exchange:secretRotationDays": "30"}
    with pytest.raises(ConfigError, match=r"intrexx-exchange:portalz: unknown key \(did you mean 'portals'\?\)"):
        read_settings_under_pulumi(handed_over)
    handed_over["intrexx-exchange:secretRotationDays"] = "31"  # another source: not judged
    assert read_settings_under_pulumi(handed_over).secret_rotation_days == 31


def test_the_keys_pulumi_handed_over_are_judged_without_any_stack_file(project, monkeypatch):
    """PULUMI_CONFIG, set by Pulumi's Python language host, holds every key of the run, from whatever source."""
    handed_over = {"intrexx-exchange:portals": json.dumps([HR]), "intrexx-exchange:secretRotationDay": "30"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(handed_over))
    with pytest.raises(ConfigError, match="intrexx-exchange:secretRotationDay: unknown key"):
        read_settings_under_pulumi(handed_over)
    handed_over.pop("intrexx-exchange:secretRotationDay")
    handed_over["azuread:tenantId"] = "00000000-0000-0000-0000-000000000000"
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(handed_over))
    assert [p.name for p in read_settings_under_pulumi(handed_over).portals] == ["hr"]


def test_an_encrypted_value_of_a_known_key_is_named_not_replaced_by_a_default(project, capsys):
    code, out, err = plan(
        project, capsys, f"config:\n{PORTALS}  intrexx-exchange:environment: {{secure: AAAB}}\n", "--portal", "hr"
    )
    assert code == 2 and out == ""
    assert "intrexx-exchange:environment: encrypted (`secure:`)" in err and len(err.strip().splitlines()) == 1
    text = "config:\n  intrexx-exchange:portals: [{name: hr, baseUrl: {secure: AAAB}}]\n"
    code, _, err = plan(project, capsys, text, "--portal", "hr")
    assert code == 2 and "intrexx-exchange:portals: encrypted" in err


def test_json_text_from_pulumi_matches_whatever_its_spacing_and_escapes(project):
    """Go's JSON escapes <, > and & and writes no spaces; the stack file is still the source Pulumi read."""
    (project / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  intrexx-exchange:portals: [{name: hr, baseUrl: 'https://intrexx.example.com/hr'}]\n"
        "  intrexx-exchange:environment: R&D <lab>\n"
        "  intrexx-exchange:portalz: x\n"
    )
    go_json = '[{"baseUrl":"https://intrexx.example.com/hr","name":"hr"}]'
    with pytest.raises(ConfigError, match="intrexx-exchange:portalz: unknown key"):
        read_settings_under_pulumi({"intrexx-exchange:portals": go_json, "intrexx-exchange:environment": "R&D <lab>"})
