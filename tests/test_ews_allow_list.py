"""ews-allow-list.ps1: the script that puts an exchange portal's app on the tenant's EWS allow list.

PowerShell is not installable here (tests/powershell_text.py says why), so the script is proven in two halves:
its structure is read from the generated text (read, merge, write in that order; a write only when something
changed; ids compared as GUIDs; only this app's id ever dropped; no empty list written), and the merge itself runs
as a Python transcription of the script's statements over generated allow lists. `test_the_model_transcribes_the_
script` pins every statement the transcription copies, so a change to the script fails until the model follows.
"""

import dataclasses
import json
import re
import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from outputs_fixtures import HR, LEGACY, stack_outputs
from powershell_text import parse

from components.clouds import CLOUDS
from components.ews import EWS_BLOCKED_FROM, EWS_SHUTDOWN, ews_state
from intrexx_connector.render import EWS_ALLOW_LIST_FILE, ews_allow_list_script, portal_files
from intrexx_connector.stack_outputs import parse_outputs

DAY = date(2026, 11, 24)
PHASE_DAYS = {"open": date(2026, 9, 30), "allow-list-required": DAY, "retired": date(2027, 4, 1)}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def legacy_portal(cloud: str | None = None):
    (portal,) = parse_outputs(json.dumps(stack_outputs([LEGACY], cloud=cloud)))
    return portal


LEGACY_PORTAL = legacy_portal()
SCRIPT_TEXT = ews_allow_list_script(LEGACY_PORTAL, DAY)
SCRIPT = parse(SCRIPT_TEXT)


# Structure -------------------------------------------------------------------------------------------------


def test_every_exchange_portal_gets_the_script_and_m365_portals_do_not(tmp_path):
    portals = {p.name: p for p in parse_outputs(json.dumps(stack_outputs([HR, LEGACY])))}
    for portal in portals.values():
        files = portal_files(portal, tmp_path / portal.name, DAY)
        text, mode = files[EWS_ALLOW_LIST_FILE]
        assert mode == 0o644 and portal.client_secret not in text
        assert f"$AppId = [guid]'{portal.client_id}'" in text


def test_it_reads_then_merges_then_writes():
    read, reread = SCRIPT.lines(r"^\$config = Read-EwsPolicy$")
    merge = [SCRIPT.line(line) for line in ("$before = @(Select-UniqueAppId $stored)", "$after = $others")]
    changed = SCRIPT.line("$changed = $listChanged -or ($enable -and -not $enabled)")
    writes = SCRIPT.calls(r"\bSet-OrganizationConfig\b")
    assert len(writes) == 2
    assert read < min(merge) < changed < min(writes)
    # The read: the list comes only with -RetrieveEwsOperationAccessPolicy, inside try/catch.
    (get,) = SCRIPT.calls(r"\bGet-OrganizationConfig\b")
    assert SCRIPT.bare[get] == "$config = Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy"
    assert SCRIPT.headers(get) == ["function Read-EwsPolicy", "try"]
    # ... and it is printed before anything else happens, and again after a write.
    assert SCRIPT.line("Show-EwsPolicy 'before' $config.EwsEnabled $stored") == read + 2
    after = SCRIPT.line("Show-EwsPolicy 'after' $config.EwsEnabled @(Split-AppIdList $config.EwsAllowedAppIDs)")
    assert max(writes) < reread < after and SCRIPT.headers(after) == ["if ($changed)"]


def test_it_writes_only_when_something_changed():
    for index in SCRIPT.calls(r"\bSet-OrganizationConfig\b"):
        assert SCRIPT.headers(index)[0] == "if ($changed)", SCRIPT.code[index]
        assert SCRIPT.bare[index].startswith("Set-OrganizationConfig -EwsAllowedAppIDs $joined")
    (enabling,) = SCRIPT.calls(r"-EwsEnabled \$true")
    assert SCRIPT.headers(enabling)[-1] == "if ($enable)"
    assert SCRIPT.line("$enable = (-not $Remove) -and ($enabled -or $EnableEws)")
    assert SCRIPT.line("$joined = $after -join ','")
    unchanged = SCRIPT.block("if ($changed)")
    assert SCRIPT.code[unchanged.end] == "} else {"
    assert SCRIPT.code[unchanged.end + 1] == "Write-Host 'Nothing to change.'"


def test_ids_are_compared_as_guids():
    assert SCRIPT.line(f"$AppId = [guid]'{LEGACY_PORTAL.client_id}'")
    test = SCRIPT.block("function Test-IsThisApp")
    assert SCRIPT.body(test) == ["param([string]$Text)", "([guid]$Text) -eq $AppId"]
    unique = SCRIPT.block("function Select-UniqueAppId")
    assert "$seen = [System.Collections.Generic.HashSet[guid]]::new()" in SCRIPT.body(unique)
    # No string comparison of ids anywhere: -contains, -like, -match, .Contains( or -ceq would be case-sensitive
    # or textual; the one case-sensitive comparison is "did the stored text change".
    assert not SCRIPT.calls(r"-contains|-like|-match|\.Contains\(|-ceq")
    assert SCRIPT.calls(r"-cne") == [SCRIPT.line("$listChanged = ($after -join ',') -cne ($stored -join ',')")]


def test_the_only_id_it_ever_drops_is_this_one():
    filters = SCRIPT.calls(r"Where-Object")
    assert [SCRIPT.code[i] for i in filters] == ["$others = @($before | Where-Object { -not (Test-IsThisApp $_) })"]
    assert sorted(SCRIPT.code[i] for i in SCRIPT.lines(r"^\$after = ")) == sorted(
        ["$after = $others", "$after = $before", "$after = @($before) + $AppId.ToString()"]
    )
    assert SCRIPT.headers(SCRIPT.line("$after = $others")) == ["if ($Remove)"]
    # The only GUID in the script is this app's.
    assert {g.lower() for g in GUID.findall(SCRIPT_TEXT)} == {LEGACY_PORTAL.client_id.lower()}


def test_removal_never_writes_an_empty_list():
    guard = SCRIPT.block("if ($Remove -and $listChanged -and $after.Count -eq 0)")
    body = SCRIPT.body(guard)
    assert body[0].startswith("Write-Warning (") and body[-1] == "exit 1"
    assert not [i for i in SCRIPT.calls(r"\bSet-OrganizationConfig\b") if guard.contains(i)]
    assert guard.end < SCRIPT.block("if ($changed)").start
    warning = " ".join(SCRIPT.code[guard.start + 1 : guard.end])
    for choice in ("Set-OrganizationConfig -EwsEnabled $false", "put them", "leave the list as it is"):
        assert choice in warning
    # Third review: $null is documented to stop restricting by app id; an empty list is reported to block all EWS.
    assert "use the value $null" in warning and "block EWS for every application" in warning


def test_errors_stop_the_script_and_none_are_swallowed():
    first_command = min(SCRIPT.calls(r"^\$config = Read-EwsPolicy"))
    assert SCRIPT.line("$ErrorActionPreference = 'Stop'") < first_command
    assert "SilentlyContinue" not in SCRIPT_TEXT
    assert "@{Add=" not in SCRIPT_TEXT.replace(" ", "")
    for catch in [b for b in SCRIPT.blocks if b.header == "catch"]:
        assert SCRIPT.body(catch)[-1].startswith("throw "), "a catch rethrows with context"


def test_the_parameters_come_first_and_are_remove_and_enable_ews():
    code = [line for line in SCRIPT.code if line]
    assert code[:5] == ["[CmdletBinding()]", "param(", "[switch]$Remove,", "[switch]$EnableEws", ")"]


@pytest.mark.parametrize("phase", sorted(PHASE_DAYS))
def test_the_header_says_who_runs_it_where_and_what_the_ews_phase_means(phase):
    day = PHASE_DAYS[phase]
    text = parse(ews_allow_list_script(LEGACY_PORTAL, day)).comment_text
    assert "Exchange Administrator" in text
    assert "Connect-ExchangeOnline -UserPrincipalName <admin UPN> -ExchangeEnvironmentName O365Default" in text
    assert " ".join(ews_state(day).split()) in text
    expected = {
        "open": "optional for this portal",
        "allow-list-required": "works for this portal only with it",
        "retired": "allowRetiredEws: true",
    }[phase]
    assert expected in text
    assert f"on {day.isoformat()}" in text
    assert EWS_BLOCKED_FROM.isoformat() in text or EWS_SHUTDOWN.isoformat() in text


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_the_header_connects_to_the_portals_cloud(cloud):
    portal = legacy_portal(cloud)
    text = ews_allow_list_script(portal, DAY)
    assert f"-ExchangeEnvironmentName {CLOUDS[cloud].exchange_powershell_environment}" in text


# The merge, transcribed --------------------------------------------------------------------------------------

# Every statement the model below copies, as it stands in the script.
MODELLED_STATEMENTS = (
    "foreach ($item in @($Value)) {",
    "foreach ($part in ([string]$item -split ',')) {",
    "$text = $part.Trim()",
    "if ($text -eq '') { continue }",
    "if (-not [guid]::TryParse($text, [ref]$id)) {",
    "$seen = [System.Collections.Generic.HashSet[guid]]::new()",
    "if ($seen.Add([guid]$text)) { $text }",
    "([guid]$Text) -eq $AppId",
    "$stored = @(Split-AppIdList $config.EwsAllowedAppIDs)",
    "$before = @(Select-UniqueAppId $stored)",
    "$others = @($before | Where-Object { -not (Test-IsThisApp $_) })",
    "$present = $others.Count -lt $before.Count",
    "if ($Remove) {",
    "$after = $others",
    "} elseif ($present) {",
    "$after = $before",
    "$after = @($before) + $AppId.ToString()",
    "$enabled = $config.EwsEnabled -eq $true",
    "$enable = (-not $Remove) -and ($enabled -or $EnableEws)",
    "$listChanged = ($after -join ',') -cne ($stored -join ',')",
    "$changed = $listChanged -or ($enable -and -not $enabled)",
    "if ($Remove -and $listChanged -and $after.Count -eq 0) {",
    "$joined = $after -join ','",
)


def test_the_model_transcribes_the_script():
    for statement in MODELLED_STATEMENTS:
        assert statement in SCRIPT.code, statement


class NotAGuid(Exception):
    pass


def split_app_id_list(value: object) -> list[str]:
    """Split-AppIdList: `@($Value)` makes a scalar (or $null) one item; each is split at commas and trimmed."""
    texts = []
    for item in value if isinstance(value, list) else [value]:
        for part in ("" if item is None else str(item)).split(","):
            text = part.strip()
            if text == "":
                continue
            try:
                uuid.UUID(text)
            except ValueError:
                raise NotAGuid(text) from None
            texts.append(text)
    return texts


def select_unique_app_id(ids: list[str]) -> list[str]:
    seen: set[uuid.UUID] = set()
    unique = []
    for text in ids:
        if uuid.UUID(text) not in seen:
            seen.add(uuid.UUID(text))
            unique.append(text)
    return unique


def is_this_app(text: str, app_id: uuid.UUID) -> bool:
    return uuid.UUID(text) == app_id


class Tenant:
    """Exchange Online's organization config as far as the script touches it; Set replaces the list."""

    def __init__(self, allowed: object, enabled: bool | None):
        self.allowed = allowed
        self.enabled = enabled
        self.writes: list[tuple[str, bool | None]] = []

    def set(self, allowed: str, enabled: bool | None) -> None:
        self.writes.append((allowed, enabled))
        self.allowed = allowed
        if enabled is not None:
            self.enabled = enabled


def run_script(tenant: Tenant, app_id: uuid.UUID, remove: bool = False, enable_ews: bool = False) -> int:
    """The script's main part, statement by statement (MODELLED_STATEMENTS); returns its exit code."""
    stored = split_app_id_list(tenant.allowed)
    before = select_unique_app_id(stored)
    others = [text for text in before if not is_this_app(text, app_id)]
    present = len(others) < len(before)
    if remove:
        after = others
    elif present:
        after = before
    else:
        after = [*before, str(app_id)]
    enabled = tenant.enabled is True
    enable = (not remove) and (enabled or enable_ews)
    list_changed = ",".join(after) != ",".join(stored)
    changed = list_changed or (enable and not enabled)
    if remove and list_changed and len(after) == 0:
        return 1
    if changed:
        joined = ",".join(after)
        tenant.set(joined, True if enable else None)
    return 0


def spellings(value: uuid.UUID):
    text = str(value)
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(text, upper, strict=True))
    )


APP_ID = uuid.UUID(LEGACY_PORTAL.client_id)
OTHER_IDS = st.lists(st.uuids().filter(lambda u: u != APP_ID), min_size=0, max_size=5, unique=True)
PADDING = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def allow_lists(draw, include_ours=None):
    """An EwsAllowedAppIDs value as Exchange might hold it: other ids, maybe ours, duplicates, any letter case,
    padding, blank entries, as one string or a collection of strings, or empty."""
    ids = draw(OTHER_IDS)
    pool = [*ids, APP_ID] if draw(st.booleans() if include_ours is None else include_ours) else ids
    if not pool:
        return draw(st.sampled_from([None, "", [], [""], " , "]))
    entries = draw(st.lists(st.sampled_from(pool), min_size=len(pool), max_size=len(pool) + 4))
    entries += [u for u in pool if u not in entries]
    texts = [draw(PADDING) + draw(spellings(u)) + draw(PADDING) for u in entries]
    texts += draw(st.lists(st.just(" "), max_size=2))  # blank entries
    if draw(st.booleans()):
        return ",".join(texts)
    cut = draw(st.integers(0, len(texts)))
    return [",".join(texts[:cut]), ",".join(texts[cut:])]


def uuids_of(value: object) -> list[uuid.UUID]:
    return [uuid.UUID(text) for text in split_app_id_list(value)]


@given(allow_lists(), st.sampled_from([True, None, False]))
def test_adding_puts_this_app_on_once_and_keeps_every_other_id(allowed, enabled_state):
    tenant = Tenant(allowed, enabled_state)
    others_before = {u for u in uuids_of(allowed) if u != APP_ID}
    assert run_script(tenant, APP_ID, enable_ews=True) == 0
    after = uuids_of(tenant.allowed)
    assert after.count(APP_ID) == 1
    assert set(after) - {APP_ID} == others_before, "another application was dropped or invented"
    assert len(after) == len(set(after)), "duplicates are written once"
    assert tenant.enabled is True
    # Only when something changed was anything written, and a second run writes nothing.
    stored = split_app_id_list(allowed)
    needed = select_unique_app_id(stored) != stored or APP_ID not in uuids_of(allowed) or enabled_state is not True
    assert len(tenant.writes) == (1 if needed else 0)
    assert run_script(tenant, APP_ID, enable_ews=True) == 0
    assert len(tenant.writes) == (1 if needed else 0), "the second run changed something"


@given(allow_lists(), st.sampled_from([None, False]))
def test_without_enable_ews_ews_enabled_is_left_alone(allowed, enabled_state):
    tenant = Tenant(allowed, enabled_state)
    assert run_script(tenant, APP_ID) == 0
    assert tenant.enabled is enabled_state
    assert all(enabled is None for _, enabled in tenant.writes)
    assert APP_ID in uuids_of(tenant.allowed)


@given(allow_lists(), st.sampled_from([True, None, False]))
def test_removing_drops_only_this_app(allowed, enabled_state):
    tenant = Tenant(allowed, enabled_state)
    others_before = {u for u in uuids_of(allowed) if u != APP_ID}
    code = run_script(tenant, APP_ID, remove=True)
    if not others_before and APP_ID in uuids_of(allowed):
        assert code == 1 and tenant.writes == [], "an empty list must not be written"
        return
    assert code == 0
    after = uuids_of(tenant.allowed)
    assert APP_ID not in after
    assert set(after) == others_before
    assert tenant.enabled is enabled_state, "removal never touches EwsEnabled"
    assert run_script(tenant, APP_ID, remove=True) == 0
    assert len(tenant.writes) <= 1, "the second run changed something"


@given(allow_lists(include_ours=st.just(False)), st.text(alphabet="xyz-01", min_size=1, max_size=8))
def test_an_entry_that_is_not_a_guid_stops_the_script_before_it_writes(allowed, junk):
    value = f"{allowed or ''},{junk}" if not isinstance(allowed, list) else [*allowed, junk]
    tenant = Tenant(value, True)
    with pytest.raises(NotAGuid):
        run_script(tenant, APP_ID)
    assert tenant.writes == []


def test_values_cannot_break_out_of_the_header_comments():
    portal = dataclasses.replace(
        LEGACY_PORTAL, display_name="Intrexx legacy\nSet-OrganizationConfig -EwsEnabled $false"
    )
    head = ews_allow_list_script(portal, DAY).split("[CmdletBinding()]")[0]
    assert all(line.startswith("#") or not line for line in head.splitlines()), head
