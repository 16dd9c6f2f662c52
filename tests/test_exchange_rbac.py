"""exchange-rbac.ps1: Exchange RBAC for Applications for the Microsoft 365 connector's service accounts.

Read from the generated text (tests/powershell_text.py; PowerShell is not installable here): every New- is guarded by
a look-up of the same object, the look-ups catch "not found" and re-throw anything else, the reconcile removes only
role assignments named with this portal's prefix AND assigned to this app that the configuration no longer wants,
the cleanup mode removes the portal's assignments and its scope and creates nothing, and an unscoped portal's script
offers only that cleanup.
"""

import dataclasses
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from outputs_fixtures import OPS, TEAM, USERS, WIDE, stack_outputs
from powershell_text import parse

from components.clouds import CLOUDS
from components.contract import GrantedBy, GrantedPermission, MailboxScope, PermissionType
from intrexx_connector.render import (
    MAX_EXCHANGE_NAME,
    RBAC_FILE,
    assignment_prefix,
    exchange_rbac_script,
    portal_files,
    ps_quote,
    role_assignment_name,
    scope_name,
)
from intrexx_connector.stack_outputs import parse_outputs

PORTALS = {p.name: p for p in parse_outputs(json.dumps(stack_outputs([OPS, TEAM, WIDE, USERS])))}
SCRIPTS = {name: parse(exchange_rbac_script(PORTALS[name])) for name in ("ops", "team", "wide")}
SCOPED = ("ops", "team")
# What each New- creates, the variable that guards it, and the look-up that fills that variable.
LOOK_BEFORE_CREATE = {
    "New-ServicePrincipal": ("if (-not $sp)", "$sp = @(Find-ServicePrincipal) | Select-Object -First 1"),
    "New-ManagementScope": ("if (-not $scope)", "$scope = @(Find-ManagementScope) | Select-Object -First 1"),
    "New-ManagementRoleAssignment": ("if ($found.Count -eq 0)", "$existing = @(Get-PortalAssignment $sp)"),
}
LOOKUPS = {
    "function Find-ServicePrincipal": "Get-ServicePrincipal -Identity $ObjectId",
    "function Find-ManagementScope": "Get-ManagementScope -Identity $ScopeName",
}


def test_service_accounts_get_the_script_and_user_accounts_do_not(tmp_path):
    for portal in PORTALS.values():
        files = portal_files(portal, tmp_path / portal.name, portal.secret_expires_at)
        assert (RBAC_FILE in files) == (not portal.delegated), portal.name
        if RBAC_FILE in files:
            text, mode = files[RBAC_FILE]
            assert mode == 0o644 and portal.client_secret not in text


@pytest.mark.parametrize("name", SCOPED)
def test_every_new_object_is_looked_up_first(name):
    script = SCRIPTS[name]
    creates = script.calls(r"\bNew-\w+")
    assert {re.search(r"New-\w+", script.bare[i]).group(0) for i in creates} == set(LOOK_BEFORE_CREATE)
    for index in creates:
        cmdlet = re.search(r"New-\w+", script.bare[index]).group(0)
        guard, lookup = LOOK_BEFORE_CREATE[cmdlet]
        assert guard in script.headers(index), (cmdlet, script.headers(index))
        (found,) = [i for i in script.lines(f"^{re.escape(lookup)}$") if not script.headers(i)]
        assert found < script.block(guard).start < index
    assert (
        script.line("$found = @($existing | Where-Object { [string]$_.Name -eq $name })")
        < script.block("if ($found.Count -eq 0)").start
    )


@pytest.mark.parametrize("name", ("ops", "team", "wide"))
def test_look_ups_catch_not_found_and_rethrow_everything_else(name):
    script = SCRIPTS[name]
    for function, call in LOOKUPS.items():
        block = script.block(function)
        (index,) = [i for i in script.calls(re.escape(call)) if block.contains(i)]
        assert script.headers(index)[-1] == "try"
        catch = next(b for b in script.blocks if b.header == "catch" and b.parent is block)
        assert script.body(catch) == ["if (-not (Test-NotFound $_)) { throw }", "$found = @()"]
        # A Get- that does not find an identity may return every object (Microsoft's caution): exact match only.
        assert re.fullmatch(r"@\(\$found \| Where-Object \{ \[string\]\$_\.\w+ -eq \$\w+ \}\)", script.body(block)[-1])
    assert "SilentlyContinue" not in script.text
    assert script.line("$ErrorActionPreference = 'Stop'") < min(script.calls(r"\b(Get|New|Set|Remove)-"))


@pytest.mark.parametrize("name", ("ops", "team", "wide"))
def test_only_this_portals_assignments_of_this_app_are_ever_removed(name):
    portal, script = PORTALS[name], SCRIPTS[name]
    assert script.line(f"$AssignmentPrefix = {ps_quote(assignment_prefix(portal))}")
    assert script.line(f"$ObjectId = {ps_quote(portal.service_principal_object_id)}")
    (removal,) = script.calls(r"\bRemove-ManagementRoleAssignment\b")
    assert script.headers(removal) == ["function Remove-PortalAssignment"]
    # Every call of Remove-PortalAssignment gets an assignment from Get-PortalAssignment ...
    for call in script.calls(r"^Remove-PortalAssignment \$assignment$"):
        loop = script.enclosing(call)[-1 if "foreach" in script.headers(call)[-1] else -2]
        assert loop.header in (
            "foreach ($assignment in @(Get-PortalAssignment $sp))",
            "foreach ($assignment in $existing)",
        )
    # ... which keeps only those named with the prefix AND assigned to this app.
    body = script.body(script.block("function Get-PortalAssignment"))
    assert body[-3:] == [
        "@(Get-ManagementRoleAssignment) | Where-Object {",
        "([string]$_.Name).StartsWith($AssignmentPrefix, [System.StringComparison]::OrdinalIgnoreCase) -and "
        "(Test-ThisApp $_ $ServicePrincipal)",
        "}",
    ]
    test_app = script.body(script.block("function Test-ThisApp"))
    assert "[string]$ServicePrincipal.ObjectId" in test_app[1]
    assert test_app[-1] == (
        "($names -contains [string]$Assignment.RoleAssigneeName) -or "
        "($names -contains [string]$Assignment.RoleAssignee)"
    )


@pytest.mark.parametrize("name", SCOPED)
def test_the_reconcile_removes_what_the_configuration_no_longer_wants(name):
    portal, script = PORTALS[name], SCRIPTS[name]
    wanted = script.body(script.block("$Wanted = [ordered]@"))
    assert wanted == [
        f"{ps_quote(role_assignment_name(portal, p))} = {ps_quote(p.exchange_role)}" for p in portal.rbac_permissions
    ]
    (apply_removal,) = [i for i in script.calls(r"^Remove-PortalAssignment") if "if ($Remove)" not in script.headers(i)]
    assert script.headers(apply_removal) == [
        "foreach ($assignment in $existing)",
        "if (-not $Wanted.Contains([string]$assignment.Name))",
    ]
    (create,) = script.calls(r"\bNew-ManagementRoleAssignment\b")
    assert script.bare[create] == (
        "New-ManagementRoleAssignment -Name $name -App $ObjectId -Role $Wanted[$name] -CustomResourceScope $ScopeName "
        "| Out-Null"
    )
    assert apply_removal < create, "stale assignments go before new ones are made"


@pytest.mark.parametrize("name", ("ops", "team", "wide"))
def test_cleanup_mode_removes_the_assignments_and_the_scope_and_creates_nothing(name):
    script = SCRIPTS[name]
    cleanup = script.block("if ($Remove)")
    assert cleanup.parent is None and script.body(cleanup)[-1] == "exit 0"
    inside = [i for i in range(cleanup.start, cleanup.end) if script.bare[i]]
    commands = " ".join(script.bare[i] for i in inside)
    assert "Remove-PortalAssignment $assignment" in commands
    assert "Remove-ManagementScope -Identity $ScopeName -Confirm:$false" in commands
    assert not re.search(r"\b(New|Set)-", commands)
    creates = script.calls(r"\b(New|Set)-(ServicePrincipal|ManagementScope|ManagementRoleAssignment)\b")
    assert all(i > cleanup.end for i in creates)
    (scope_removal,) = script.calls(r"\bRemove-ManagementScope\b")
    assert script.headers(scope_removal)[-1] == "try"
    assert script.line("[switch]$Remove") < cleanup.start


def test_an_unscoped_service_account_gets_only_the_cleanup():
    script = SCRIPTS["wide"]
    assert not script.calls(r"\b(New|Set)-|Test-ServicePrincipalAuthorization|Get-Recipient")
    assert script.body(script.block("$Wanted = [ordered]@")) == []
    after_cleanup = [line for line in script.bare[script.block("if ($Remove)").end + 1 :] if line]
    assert not [line for line in after_cleanup if re.search(r"\bRemove-", line)]
    assert "WITHOUT mailboxScope" in script.comment_text and "only offers the cleanup" in script.comment_text


def test_a_group_scope_is_resolved_by_its_entra_object_id():
    script, group = SCRIPTS["team"], TEAM["mailboxScope"]["groupId"]
    (lookup,) = script.calls(r"\bGet-Recipient\b")
    assert script.line(f"$GroupId = '{group}'") < lookup
    assert script.code[lookup] == (
        "$groups = @(Get-Recipient -Filter (\"ExternalDirectoryObjectId -eq '{0}'\" -f $GroupId) -RecipientTypeDetails "
        "GroupMailbox, MailUniversalSecurityGroup, MailUniversalDistributionGroup -ResultSize Unlimited)"
    )
    assert script.headers(lookup) == ["try"]
    check = script.block("if ($groups.Count -ne 1)")
    assert script.body(check)[0].startswith("throw ('Expected exactly one group")
    assert (
        script.line(
            '$filter = "MemberOfGroup -eq \'{0}\'" -f ([string]$groups[0].DistinguishedName -replace "\'", "\'\'")'
        )
        > check.end
    )
    assert not script.calls(r"\bGet-Group\b"), "Get-Group -Identity does not take the Entra object id"


def test_a_filter_scope_is_quoted_for_powershell():
    assert SCRIPTS["ops"].line("$filter = 'Department -eq ''Ops'''")
    assert not SCRIPTS["ops"].calls(r"\bGet-Recipient\b")


@pytest.mark.parametrize("name", ("ops", "team", "wide"))
def test_the_header_states_the_limits_and_who_runs_it(name):
    text = SCRIPTS[name].comment_text
    for fact in (
        "Exchange Administrator",
        "nested groups are out of scope",
        "AutoDiscover",
        "30 minutes to 2 hours",
        "-Remove",
        "learn.microsoft.com/exchange/permissions-exo/application-rbac",
    ):
        assert fact in text, fact


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_the_header_connects_to_the_portals_cloud(cloud):
    (ops,) = parse_outputs(json.dumps(stack_outputs([OPS], cloud=cloud)))
    expected = f"-ExchangeEnvironmentName {CLOUDS[cloud].exchange_powershell_environment}"
    assert expected in exchange_rbac_script(ops)


NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,39}", fullmatch=True)
ENVIRONMENTS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64)
PERMISSIONS = st.from_regex(r"[A-Z][A-Za-z]{0,30}\.(Read|ReadWrite|Send)(\.All)?", fullmatch=True)


@given(NAMES, ENVIRONMENTS, st.lists(PERMISSIONS, min_size=1, max_size=4, unique=True))
def test_names_fit_exchange_and_every_assignment_carries_the_portals_prefix(name, environment, permissions):
    portal = dataclasses.replace(PORTALS["ops"], portal=name, environment=environment)
    prefix = assignment_prefix(portal)
    assert len(scope_name(portal)) <= MAX_EXCHANGE_NAME and prefix.startswith("intrexx-")
    names = set()
    for permission in permissions:
        granted = GrantedPermission("graph", "g", permission, PermissionType.ROLE, "i", GrantedBy.EXCHANGE_RBAC, "r")
        assignment = role_assignment_name(portal, granted)
        assert len(assignment) <= MAX_EXCHANGE_NAME
        assert assignment.startswith(prefix)
        names.add(assignment)
    assert len(names) == len(permissions), "two permissions share an assignment name"


def test_values_cannot_break_out_of_the_header_comments():
    portal = dataclasses.replace(
        PORTALS["ops"],
        environment="dev\nRemove-Mailbox everyone",
        mailbox_scope=MailboxScope(recipient_filter="Department -eq 'Ops'\r\nRemove-Mailbox everyone"),
    )
    head = exchange_rbac_script(portal).split("[CmdletBinding()]")[0]
    assert all(line.startswith("#") or not line for line in head.splitlines()), head
