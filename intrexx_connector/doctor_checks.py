"""The checks of `doctor`: what a tenant refuses that `pulumi up` of a stack would need.

Each check reads Microsoft Graph through a `GraphClient` (GET only) and returns one or more `Check`s with a
status (pass / warn / fail), what it found and what to do. Graph's answers are read defensively: a field of the
wrong type is a `GraphProtocolError` for that check, never a traceback. The facts each check relies on name
their source; `docs/doctor.md` explains them for people.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from components.catalogue import load_catalogue
from components.config import GRAPH_OBJECT_ID, PortalSettings, StackSettings
from components.contract import Connector, PermissionType
from components.facts import (
    EXCHANGE_ONLINE_APP_ID,
    GRAPH_APP_ID,
    MIN_ROTATION_DAYS,
    is_guid,
    largest_rotation_days,
    same_guid,
    secret_lifetime_days,
    token_payload,
)
from components.portal import display_name

from .graph import GraphClient, GraphError, GraphProtocolError, _kind, odata_string, one_line

PASS, WARN, FAIL = "pass", "warn", "fail"
_SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

# Graph permissions doctor itself needs to read what each check reads (the "Permissions" tables of the pages
# named at each check).
READS = {
    "conditional-access": "Policy.Read.All",
    "app-management-policy": "Policy.Read.All",
    "deployer-permissions": "Application.Read.All (service principal) or User.Read (a signed-in user)",
    "display-name": "Application.Read.All",
}


@dataclass(frozen=True)
class Check:
    id: str
    status: str
    title: str
    detail: str
    remedy: str = ""
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "remedy": self.remedy,
            "sources": list(self.sources),
        }


@dataclass
class DoctorContext:
    settings: StackSettings
    portals: tuple[PortalSettings, ...]  # after --portal
    graph: GraphClient
    token: str
    today: date
    stack: str
    deployer_client_id: str | None = None
    deployer_client_id_source: str = ""
    identity: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Finding:
    status: str
    line: str


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


# Which portals a check concerns: one place each.


def uses_device_code(portal: PortalSettings) -> bool:
    """The Connector for Microsoft Exchange requests each mailbox user's refresh token ("Request MS365 Refresh
    Token") with the device code flow; the Microsoft 365 connector signs users in through the browser."""
    return portal.connector is Connector.EXCHANGE


def uses_ews(portal: PortalSettings) -> bool:
    """Portals whose connector speaks EWS: the Connector for Microsoft Exchange."""
    return portal.connector is Connector.EXCHANGE


# Reading Graph's answers ------------------------------------------------------------------------------------


def _at(obj: object, path: str, kind: type, what: str, default: Any = None) -> Any:
    """obj[a][b][c] for path "a.b.c", checked to be of `kind`; missing or null gives `default`."""
    value = obj
    for key in path.split("."):
        if value is None:
            return default
        if not isinstance(value, dict):
            raise GraphProtocolError(f"{what}: {path} is inside {_kind(value)}, not an object")
        value = value.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise GraphProtocolError(f"{what}: {path} is {_kind(value)}")
    return value


def _strings(obj: object, path: str, what: str) -> list[str]:
    values = _at(obj, path, list, what, default=[])
    if not all(isinstance(v, str) for v in values):
        raise GraphProtocolError(f"{what}: {path} holds something other than strings")
    return values


def _objects(items: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise GraphProtocolError(f"{what}: {_kind(items)}, not a list")
    if not all(isinstance(item, dict) for item in items):
        raise GraphProtocolError(f"{what}: the list holds something other than objects")
    return items


def _name(obj: dict[str, Any], fallback: str) -> str:
    for key in ("displayName", "id"):
        if isinstance(obj.get(key), str) and obj[key].strip():
            return one_line(obj[key], 120)
    return fallback


# 1. Conditional Access and the device code flow -------------------------------------------------------------
#
# Graph conditionalAccessPolicy (learn.microsoft.com/graph/api/resources/conditionalaccesspolicy): `state` is
# "enabled, disabled, enabledForReportingButNotEnforced"; conditionalAccessAuthenticationFlows.transferMethods
# "Represents the transfer methods in scope for the policy. The possible values are: none, deviceCodeFlow,
# authenticationTransfer" (a flags enum, serialized as one comma-separated string;
# .../resources/conditionalaccessauthenticationflows); grantControls.builtInControls holds "block"
# (.../resources/conditionalaccessgrantcontrols). Microsoft's own template: include all users, Conditions >
# Authentication flows > Device code flow, Grant > Block access, exclude "emergency access or break-glass
# accounts and any other necessary users" (learn.microsoft.com/entra/identity/conditional-access/
# policy-block-authentication-flows). Target resources: Microsoft Graph "functions as an umbrella resource" and
# cannot be targeted itself; mail reached through it or EWS is Exchange Online, part of the "Office 365" app
# group (learn.microsoft.com/entra/identity/conditional-access/concept-conditional-access-cloud-apps).

CA_SOURCES = (
    "https://learn.microsoft.com/entra/identity/conditional-access/policy-block-authentication-flows",
    "https://learn.microsoft.com/graph/api/resources/conditionalaccessauthenticationflows",
    "https://learn.microsoft.com/graph/api/resources/conditionalaccessusers",
    "https://learn.microsoft.com/graph/api/conditionalaccessroot-list-policies",
)
_EXCHANGE_TARGETS = ("All", "Office365", EXCHANGE_ONLINE_APP_ID)
_NOBODY_BY_NAME = ("All", "None", "GuestsOrExternalUsers")


# Whom a policy applies to. conditionalAccessUsers (learn.microsoft.com/graph/api/resources/conditionalaccessusers):
# includeUsers holds "User IDs in scope of policy unless explicitly excluded, None, All, or GuestsOrExternalUsers";
# includeGroups "Group IDs in scope of policy unless explicitly excluded"; includeRoles "Role IDs in scope of policy
# unless explicitly excluded". A policy blocks the device code step of Intrexx only for the mailbox users among
# them (third review, ../shared/brief: mailbox users are rarely administrators): all users is a failure; groups and
# named users may hold mailbox users, which doctor cannot rule out without reading every membership (a warning that
# names them); directory roles only pass, with a note.
@dataclass(frozen=True)
class _Audience:
    all_users: bool
    groups: list[str]
    users: list[str]
    roles: list[str]
    exclude_groups: list[str]
    exclusions: str  # " except ..." or ""

    @property
    def nobody(self) -> bool:
        return not (self.all_users or self.groups or self.users or self.roles)

    @property
    def roles_only(self) -> bool:
        return bool(self.roles) and not (self.all_users or self.groups or self.users)

    def describe(self) -> str:
        if self.all_users:
            return f"all users{self.exclusions}"
        parts = [
            f"{noun} {_shown(ids)}"
            for ids, noun in ((self.groups, "group(s)"), (self.users, "user(s)"), (self.roles, "directory role(s)"))
            if ids
        ]
        return f"the {' and '.join(parts)} it includes{self.exclusions}"


def _shown(ids: list[str], limit: int = 5) -> str:
    names = [one_line(i, 60) for i in ids[:limit]] + (["..."] if len(ids) > limit else [])
    return ", ".join(names)


def _audience(policy: dict[str, Any], what: str) -> _Audience:
    include_users = _strings(policy, "conditions.users.includeUsers", what)
    exclude_groups = _strings(policy, "conditions.users.excludeGroups", what)
    exclude_users = _strings(policy, "conditions.users.excludeUsers", what)
    exclude_roles = _strings(policy, "conditions.users.excludeRoles", what)
    excluded = [f"members of group(s) {_shown(exclude_groups)}"] if exclude_groups else []
    if exclude_users:
        excluded.append(f"{len(exclude_users)} user(s) ({_shown(exclude_users, 3)})")
    excluded += [f"{len(exclude_roles)} role(s)"] if exclude_roles else []
    return _Audience(
        all_users="All" in include_users,
        groups=_strings(policy, "conditions.users.includeGroups", what),
        users=[u for u in include_users if u not in _NOBODY_BY_NAME],
        roles=_strings(policy, "conditions.users.includeRoles", what),
        exclude_groups=exclude_groups,
        exclusions=f" except {' and '.join(excluded)}" if excluded else "",
    )


def _blocks_device_code_to_exchange(policy: dict[str, Any], what: str) -> bool:
    methods = _at(policy, "conditions.authenticationFlows.transferMethods", str, what, "")
    if "deviceCodeFlow" not in {m.strip() for m in methods.split(",")}:
        return False
    if "block" not in {c.lower() for c in _strings(policy, "grantControls.builtInControls", what)}:
        return False  # e.g. MFA for the device code flow: the mailbox user completes it in the browser
    include_apps = _strings(policy, "conditions.applications.includeApplications", what)
    exclude_apps = _strings(policy, "conditions.applications.excludeApplications", what)
    return bool(set(_EXCHANGE_TARGETS) & set(include_apps)) and not (
        {"Office365", EXCHANGE_ONLINE_APP_ID} & set(exclude_apps)
    )


def assess_ca_policy(policy: dict[str, Any]) -> _Finding | None:
    """Whether one Conditional Access policy stops a mailbox user's device code sign-in; None if it cannot."""
    name = _name(policy, "(no name)")
    what = f"Conditional Access policy {name!r}"
    if not _blocks_device_code_to_exchange(policy, what):
        return None
    audience = _audience(policy, what)
    if audience.nobody:
        return None  # nobody, or guests only
    state = _at(policy, "state", str, what, "")
    if state == "disabled":
        return _Finding(PASS, f"{name!r} (disabled) would block the device code flow; it is switched off")
    who = audience.describe()
    if audience.roles_only:
        return _Finding(
            PASS,
            f"{name!r} ({one_line(state, 40) or 'no state'}) blocks the device code flow only for {who}: "
            "mailbox users rarely hold a directory role; one who does cannot request the refresh token",
        )
    narrowed = _narrowing_conditions(policy, what)
    also = f"; it applies only under further conditions ({', '.join(narrowed)})" if narrowed else ""
    if state == "enabledForReportingButNotEnforced":
        return _Finding(
            WARN,
            f"{name!r} (report-only) would block the device code flow for {who}{also}: switched "
            "on, it stops the mailbox users' sign-in",
        )
    if state != "enabled":
        return _Finding(WARN, f"{name!r} (state {one_line(state, 40)!r}) blocks the device code flow for {who}")
    if not audience.all_users:
        return _Finding(
            WARN,
            f"{name!r} (enabled) blocks the device code flow for {who}{also}: no mailbox user Intrexx signs in "
            "may be among them (doctor does not read memberships)",
        )
    if narrowed:
        return _Finding(
            WARN,
            f"{name!r} (enabled) blocks the device code flow for {who}{also}: the mailbox users' "
            "sign-in may be blocked",
        )
    if audience.exclude_groups:
        return _Finding(
            WARN,
            f"{name!r} (enabled) blocks the device code flow for {who}: every mailbox user "
            "Intrexx signs in must be a member of an excluded group",
        )
    return _Finding(FAIL, f"{name!r} (enabled) blocks the device code flow for {who}")


def _narrowing_conditions(policy: dict[str, Any], what: str) -> list[str]:
    narrowed = []
    locations = _at(policy, "conditions.locations", dict, what)
    if locations is not None and (
        _strings(locations, "includeLocations", what) not in ([], ["All"])
        or _strings(locations, "excludeLocations", what)
    ):
        narrowed.append("locations")
    platforms = _at(policy, "conditions.platforms", dict, what)
    if platforms is not None and (
        [p.lower() for p in _strings(platforms, "includePlatforms", what)] not in ([], ["all"])
        or _strings(platforms, "excludePlatforms", what)
    ):
        narrowed.append("device platforms")
    client_types = _strings(policy, "conditions.clientAppTypes", what)
    if client_types and not {"all", "mobileAppsAndDesktopClients"} & set(client_types):
        narrowed.append(f"client app types {_shown(client_types)}")
    if any(_strings(policy, f"conditions.{key}", what) for key in ("signInRiskLevels", "userRiskLevels")):
        narrowed.append("risk levels")
    if _at(policy, "conditions.devices.deviceFilter", dict, what) is not None:
        narrowed.append("a device filter")
    return narrowed


def check_conditional_access(ctx: DoctorContext) -> Check:
    title = "Conditional Access lets mailbox users sign in with the device code flow"
    portals = [p.name for p in ctx.portals if uses_device_code(p)]
    if not portals:
        return Check(
            "conditional-access",
            PASS,
            title,
            "no delegated portal in this stack signs mailbox users in "
            "with the device code flow: Conditional Access was not read",
            sources=CA_SOURCES,
        )
    policies = _objects(ctx.graph.get_collection("/identity/conditionalAccess/policies"), "Conditional Access")
    findings = [f for f in (assess_ca_policy(p) for p in policies) if f is not None]
    status = worst(f.status for f in findings)
    read = f"{len(policies)} Conditional Access polic{'y' if len(policies) == 1 else 'ies'} read"
    if status == PASS:
        lines = [f"{read}; none blocks the device code flow for the mailbox users of {', '.join(portals)}"]
        return Check(
            "conditional-access", PASS, title, "\n".join(lines + [f.line for f in findings]), sources=CA_SOURCES
        )
    lines = [f.line for f in findings] + [read]
    remedy = (
        'Intrexx\'s "Request MS365 Refresh Token" signs each mailbox user in with the device code flow '
        f"(portals {', '.join(portals)}). In each policy named above, exclude the group of those mailbox users "
        "(Users > Exclude > Users and groups), or scope the policy to the users who must not use the flow"
    )
    return Check("conditional-access", status, title, "\n".join(lines), remedy, CA_SOURCES)


# 2. App management policies: client secret restrictions ----------------------------------------------------
#
# tenantAppManagementPolicy "applies to all apps and service principals unless overridden when an
# appManagementPolicy is applied to the object"; isEnabled "Default value is false"
# (learn.microsoft.com/graph/api/resources/tenantappmanagementpolicy). An appManagementPolicy holds
# "Restrictions on app management operations for specific applications and service principals" and applies to
# the objects it is assigned to (appliesTo; .../resources/appmanagementpolicy). passwordCredentialConfiguration
# (.../resources/passwordcredentialconfiguration): restrictionType passwordAddition | passwordLifetime | ...;
# maxLifetime "defined as an ISO 8601 duration"; restrictForAppsCreatedAfterDateTime "Specifies the date from
# which the policy restriction applies to newly created applications"; state "If disabled, the restriction
# isn't evaluated or enforced"; excludeActors: actors with the named custom security attribute "are exempted
# from the restriction". Our secrets end 2 x secretRotationDays after the start of the period they are made in
# (components/rotation.py), so a new secret lives at most 2 x secretRotationDays.

APP_POLICY_SOURCES = (
    "https://learn.microsoft.com/graph/api/resources/tenantappmanagementpolicy",
    "https://learn.microsoft.com/graph/api/resources/appmanagementpolicy",
    "https://learn.microsoft.com/graph/api/resources/passwordcredentialconfiguration",
)
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.ASCII)


def parse_duration(text: object) -> timedelta | None:
    """An ISO 8601 duration in weeks, days and time (Graph's Edm.Duration); None for anything else, including
    years and months, whose length in days is not fixed. A duration longer than Python can hold (about 2.7 million
    years, `timedelta.max`) is `timedelta.max`: longer than any secret lives."""
    if not isinstance(text, str):
        return None
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    try:
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        return timedelta.max


def _restriction_date(value: object, what: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraphProtocolError(f"{what}: restrictForAppsCreatedAfterDateTime is {_kind(value)}")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
        # Year 1 with a positive offset (or 9999 with a negative one) lies outside what datetime can hold in UTC.
        return (moment.astimezone(UTC) if moment.tzinfo else moment).date()
    except (ValueError, OverflowError):
        raise GraphProtocolError(
            f"{what}: restrictForAppsCreatedAfterDateTime {one_line(value, 40)!r} is not a date"
        ) from None


def assess_password_restrictions(
    restrictions: list[Any], rotation_days: int, today: date, where: str
) -> list[_Finding]:
    findings = []
    need = secret_lifetime_days(rotation_days)
    for restriction in _objects(restrictions, where):
        what = f"{where}, restriction {one_line(str(restriction.get('restrictionType')), 40)}"
        kind = _at(restriction, "restrictionType", str, what, "")
        if kind not in ("passwordAddition", "passwordLifetime"):
            continue  # key credentials and custom (user-chosen) passwords: the program asks Entra to generate one
        state = _at(restriction, "state", str, what, "enabled")
        after = _restriction_date(restriction.get("restrictForAppsCreatedAfterDateTime"), what)
        exempt = bool(restriction.get("excludeActors"))
        if state != "enabled":
            findings.append(_Finding(PASS, f"{where}: {kind} is {one_line(state, 20)}, not enforced"))
            continue
        scope = (
            f"for applications created from {after.isoformat()} on"
            if after and after > today
            else f"for applications created since {after.isoformat()}"
            if after
            else "for every application"
        )
        if kind == "passwordAddition":
            status = WARN if exempt or (after and after > today) else FAIL
            line = f"{where}: blocks new client secrets {scope}"
        else:
            lifetime = parse_duration(restriction.get("maxLifetime"))
            if lifetime is None:
                findings.append(
                    _Finding(
                        WARN,
                        f"{where}: passwordLifetime with maxLifetime "
                        f"{one_line(str(restriction.get('maxLifetime')), 30)!r}, which doctor "
                        "cannot compare in days",
                    )
                )
                continue
            days = lifetime.total_seconds() / 86400
            if lifetime >= timedelta(days=need):
                findings.append(
                    _Finding(
                        PASS,
                        f"{where}: secrets may live {days:g} days {scope}; ours live up to "
                        f"{need} (2 x secretRotationDays {rotation_days})",
                    )
                )
                continue
            fits = largest_rotation_days(lifetime)
            fix = (
                f"secretRotationDays {fits} or less fits"
                if fits >= MIN_ROTATION_DAYS
                else f"no secretRotationDays fits (the smallest, {MIN_ROTATION_DAYS}, needs "
                f"{secret_lifetime_days(MIN_ROTATION_DAYS)} days)"
            )
            status = WARN if exempt or (after and after > today) else FAIL
            line = (
                f"{where}: secrets may live at most {days:g} days ({restriction.get('maxLifetime')}) {scope}; "
                f"ours live up to {need} days (2 x secretRotationDays {rotation_days}): {fix}"
            )
        if exempt:
            line += "; identities carrying its excludeActors custom security attribute are exempt"
        findings.append(_Finding(status, line))
    return findings


def check_app_management_policies(ctx: DoctorContext) -> Check:
    title = "App management policies allow our client secrets"
    rotation_days = ctx.settings.secret_rotation_days
    default = ctx.graph.get("/policies/defaultAppManagementPolicy")
    custom = _objects(ctx.graph.get_collection("/policies/appManagementPolicies"), "appManagementPolicies")
    findings = []
    where = "tenant default policy"
    restrictions = _at(default, "applicationRestrictions.passwordCredentials", list, where, [])
    enabled = _at(default, "isEnabled", bool, where, False)
    if enabled:
        findings += assess_password_restrictions(restrictions, rotation_days, ctx.today, where)
    else:
        note = " (its restrictions are not enforced)" if restrictions else ""
        findings.append(_Finding(PASS, f"{where} is disabled (isEnabled false){note}"))
    for policy in custom:
        where = f"policy {_name(policy, '(no name)')!r}"
        if not _at(policy, "isEnabled", bool, where, False):
            continue
        for finding in assess_password_restrictions(
            _at(policy, "restrictions.passwordCredentials", list, where, []), rotation_days, ctx.today, where
        ):
            # New registrations get the tenant default; a custom policy binds only the objects assigned to it.
            status = WARN if finding.status == FAIL else finding.status
            suffix = "; it applies only to the applications it is assigned to" if finding.status != PASS else ""
            findings.append(_Finding(status, finding.line + suffix))
    status = worst(f.status for f in findings)
    detail = "\n".join(f.line for f in findings) or "no restriction on client secrets"
    remedy = ""
    if status != PASS:
        remedy = (
            f"Lower secretRotationDays in Pulumi.{ctx.stack}.yaml where a lifetime is named, or ask the tenant's "
            "administrators to exempt the deploying identity (the restriction's excludeActors) or lift the "
            "restriction for these applications: the Intrexx connector authenticates with a client secret, "
            "and a secret the policy refuses fails `pulumi up` with CredentialInvalidLifetimeAsPerAppPolicy"
        )
    return Check("app-management-policy", status, title, detail, remedy, APP_POLICY_SOURCES)


# 3. The deploying identity's permissions --------------------------------------------------------------------
#
# What `pulumi up` needs, per docs/pipeline-identity.md: a service principal needs Graph application permissions
# Application.ReadWrite.OwnedBy (or .All), Application.Read.All (resource service principals),
# DelegatedPermissionGrant.ReadWrite.All (delegated consent) and AppRoleAssignment.ReadWrite.All (app role
# consent), and Application.ReadWrite.All to add other owners (learn.microsoft.com/graph/api/
# application-post-owners). A person needs Cloud Application Administrator or Application Administrator (or
# Global Administrator); consent to Microsoft Graph application permissions needs "Global Administrator or
# Privileged Role Administrator", the other two roles may consent "for any API, except ... Microsoft Graph app
# roles (application permissions)" (learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent).
# Role template ids: learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference.
# Reads: a service principal's appRoleAssignments (learn.microsoft.com/graph/api/
# serviceprincipal-list-approleassignments, Application.Read.All); a user's directory roles through
# /me/transitiveMemberOf ("groups, directory roles, and administrative units that the user is a member of through
# either direct or transitive membership", User.Read; .../user-list-transitivememberof).

DEPLOYER_SOURCES = (
    "docs/pipeline-identity.md",
    "https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent",
    "https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments",
    "https://learn.microsoft.com/graph/api/user-list-transitivememberof",
)
DIRECTORY_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
}


@dataclass(frozen=True)
class Requirement:
    any_of: tuple[str, ...]
    why: str

    def met_by(self, held: Iterable[str]) -> bool:
        return bool(set(self.any_of) & set(held))

    def describe(self) -> str:
        return f"{' or '.join(self.any_of)} ({self.why})"


def _needs(portals: Sequence[PortalSettings]) -> dict[str, list[str]]:
    delegated_consent = [p.name for p in portals if any(x.kind is PermissionType.SCOPE for x in p.permissions)]
    role_consent = [
        p.name for p in portals if any(x.kind is PermissionType.ROLE and not p.exchange_rbac(x) for x in p.permissions)
    ]
    graph_roles = [
        p.name
        for p in portals
        if any(
            x.kind is PermissionType.ROLE and not p.exchange_rbac(x) and x.resource == "graph" for x in p.permissions
        )
    ]
    owners = [p.name for p in portals if p.owners]
    return {"delegated": delegated_consent, "roles": role_consent, "graph_roles": graph_roles, "owners": owners}


def service_principal_requirements(
    portals: Sequence[PortalSettings], deployers: tuple[str, ...] | None = None, own_id: str = ""
) -> list[Requirement]:
    """What the pipeline's service principal needs. `deployers` other than itself are owners it must add, which
    Application.ReadWrite.OwnedBy cannot do (docs/pipeline-identity.md)."""
    needs = _needs(portals)
    others = [d for d in deployers or () if d.lower() != own_id.lower()]
    requirements = [
        Requirement(
            ("Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"),
            "create and manage the portals' applications and service principals",
        ),
        Requirement(
            ("Application.Read.All", "Application.ReadWrite.All"),
            "read the service principals of Microsoft Graph and Exchange Online",
        ),
    ]
    if needs["delegated"]:
        requirements.append(
            Requirement(
                ("DelegatedPermissionGrant.ReadWrite.All",),
                f"admin consent to delegated permissions: {', '.join(needs['delegated'])}",
            )
        )
    if needs["roles"]:
        requirements.append(
            Requirement(
                ("AppRoleAssignment.ReadWrite.All",),
                f"admin consent to application permissions: {', '.join(needs['roles'])}",
            )
        )
    if needs["owners"]:
        requirements.append(
            Requirement(("Application.ReadWrite.All",), f"add the extra owners of {', '.join(needs['owners'])}")
        )
    if others:
        requirements.append(
            Requirement(("Application.ReadWrite.All",), f"make the other `deployers` owners ({', '.join(others)})")
        )
    return requirements


def user_requirements(portals: Sequence[PortalSettings]) -> list[Requirement]:
    needs = _needs(portals)
    requirements = [
        Requirement(
            ("Cloud Application Administrator", "Application Administrator", "Global Administrator"),
            "create the applications and grant admin consent",
        )
    ]
    if needs["graph_roles"]:
        requirements.append(
            Requirement(
                ("Privileged Role Administrator", "Global Administrator"),
                f"consent to Microsoft Graph application permissions: {', '.join(needs['graph_roles'])}",
            )
        )
    return requirements


def check_deployer(ctx: DoctorContext) -> Check:
    title = "The deploying identity may do what pulumi up will do"
    payload = token_payload(ctx.token)  # None: opaque; only hints are taken from it
    claims = payload or {}
    token_app = next((v for v in (claims.get("appid"), claims.get("azp")) if is_guid(v)), None)
    user_token = "scp" in claims or claims.get("idtyp") == "user"
    app_token = claims.get("idtyp") == "app" or ("roles" in claims and "scp" not in claims)
    client_id, source = ctx.deployer_client_id, ctx.deployer_client_id_source
    if client_id:
        note = ""
        if user_token:
            note = f"; the Graph token belongs to a user, but {source} names this service principal: checked it"
        elif token_app and not same_guid(token_app, client_id):
            note = f"; the Graph token was issued to another client ({token_app}): checked {source}"
        return _check_service_principal(ctx, title, client_id, f"appId {client_id} from {source}{note}")
    if app_token:
        if token_app:
            return _check_service_principal(ctx, title, token_app, f"appId {token_app} from the token's claims")
    elif user_token:
        return _check_user(ctx, title)
    ctx.identity = {"kind": "unknown"}
    why = "is opaque" if payload is None else "carries no usable claims"
    return Check(
        "deployer-permissions",
        WARN,
        title,
        f"identity not determinable: the Graph token {why} and no client id was given",
        "for a pipeline identity pass --deployer-client-id (or set ARM_CLIENT_ID / AZURE_CLIENT_ID); for a "
        "person, sign in with `az login` so that doctor gets a token it can read",
        DEPLOYER_SOURCES,
    )


def _first_id(items: list[Any], what: str) -> dict[str, Any] | None:
    for item in _objects(items, what):
        if isinstance(item.get("id"), str) and is_guid(item["id"]):
            return item
    if items:
        raise GraphProtocolError(f"{what}: no object with an id")
    return None


def _check_service_principal(ctx: DoctorContext, title: str, client_id: str, how: str) -> Check:
    graph = ctx.graph
    found = graph.get_collection(
        "/servicePrincipals", {"$filter": f"appId eq {odata_string(client_id)}", "$select": "id,appId,displayName"}
    )
    sp = _first_id(found, "servicePrincipals")
    if sp is None:
        ctx.identity = {"kind": "servicePrincipal", "appId": client_id}
        return Check(
            "deployer-permissions",
            FAIL,
            title,
            f"no service principal with appId {client_id} in this tenant ({how})",
            "check ARM_CLIENT_ID / --deployer-client-id and the tenant the token is for",
            DEPLOYER_SOURCES,
        )
    name = _name(sp, client_id)
    ctx.identity = {"kind": "servicePrincipal", "appId": client_id, "objectId": sp["id"], "displayName": name}
    assignments = _objects(
        graph.get_collection(f"/servicePrincipals/{quote(sp['id'], safe='')}/appRoleAssignments"), "appRoleAssignments"
    )
    graph_sp = _first_id(
        graph.get_collection(
            "/servicePrincipals", {"$filter": f"appId eq {odata_string(GRAPH_APP_ID)}", "$select": "id,appId,appRoles"}
        ),
        "Microsoft Graph",
    )
    if graph_sp is None:
        raise GraphProtocolError("the tenant shows no Microsoft Graph service principal")
    roles = {}
    for role in _objects(_at(graph_sp, "appRoles", list, "Microsoft Graph appRoles", []), "appRoles"):
        if isinstance(role.get("id"), str) and isinstance(role.get("value"), str):
            roles[role["id"].lower()] = one_line(role["value"], 80)
    held = sorted(
        {
            roles[a["appRoleId"].lower()]
            for a in assignments
            if isinstance(a.get("appRoleId"), str)
            and a["appRoleId"].lower() in roles
            and isinstance(a.get("resourceId"), str)
            and a["resourceId"].lower() == graph_sp["id"].lower()
        }
    )
    requirements = service_principal_requirements(ctx.portals, ctx.settings.deployers, str(sp["id"]))
    missing = [r for r in requirements if not r.met_by(held)]
    who = f"service principal {name!r} ({how})"
    holds = f"holds Microsoft Graph application permissions: {', '.join(held) if held else 'none'}"
    if not missing:
        return Check(
            "deployer-permissions", PASS, title, f"{who} {holds}: enough for this stack", sources=DEPLOYER_SOURCES
        )
    detail = f"{who} {holds}\nmissing: " + "\nmissing: ".join(r.describe() for r in missing)
    remedy = (
        "grant the missing Microsoft Graph application permissions to the service principal and have a "
        "Privileged Role Administrator (or Global Administrator) consent to them; commands in "
        "docs/pipeline-identity.md"
    )
    return Check("deployer-permissions", FAIL, title, detail, remedy, DEPLOYER_SOURCES)


def _check_user(ctx: DoctorContext, title: str) -> Check:
    me = ctx.graph.get("/me", {"$select": "id,displayName,userPrincipalName"})
    upn = str(me.get("userPrincipalName")) if isinstance(me.get("userPrincipalName"), str) else str(_name(me, "?"))
    ctx.identity = {
        "kind": "user",
        "userPrincipalName": one_line(upn, 120),
        "objectId": me.get("id") if isinstance(me.get("id"), str) else None,
    }
    memberships = _objects(
        ctx.graph.get_collection(
            "/me/transitiveMemberOf/microsoft.graph.directoryRole", {"$select": "id,displayName,roleTemplateId"}
        ),
        "directory roles",
    )
    held, unreadable = set(), 0
    for role in memberships:
        template = role.get("roleTemplateId")
        if isinstance(template, str) and template.lower() in DIRECTORY_ROLES:
            held.add(DIRECTORY_ROLES[template.lower()])
        elif isinstance(role.get("displayName"), str):
            held.add(one_line(role["displayName"], 80))
        else:
            unreadable += 1
    requirements = user_requirements(ctx.portals)
    missing = [r for r in requirements if not r.met_by(held)]
    who = f"user {one_line(upn, 120)!r} holds directory roles: {', '.join(sorted(held)) if held else 'none'}"
    if not missing:
        return Check("deployer-permissions", PASS, title, f"{who}: enough for this stack", sources=DEPLOYER_SOURCES)
    detail = f"{who}\nmissing: " + "\nmissing: ".join(r.describe() for r in missing)
    if unreadable:
        detail += (
            f"\n{unreadable} role(s) came back without name or template id (Graph's limited answer without "
            "RoleManagement.Read.Directory or Directory.Read.All)"
        )
    remedy = (
        "activate the role (Privileged Identity Management: doctor sees active assignments only) or have it "
        "assigned, then run doctor again"
    )
    return Check("deployer-permissions", WARN if unreadable else FAIL, title, detail, remedy, DEPLOYER_SOURCES)


# 4. Display names that already exist ------------------------------------------------------------------------
#
# The program creates `Intrexx <portal> (<environment>)` with prevent_duplicate_names, so an existing application
# of that name stops `pulumi up`. Read with GET /applications?$filter=displayName eq '...'
# (learn.microsoft.com/graph/api/application-list, Application.Read.All); the service principal with
# GET /servicePrincipals?$filter=appId eq '...' (.../serviceprincipal-list).

DISPLAY_NAME_SOURCES = (
    "https://learn.microsoft.com/graph/api/application-list",
    "https://learn.microsoft.com/graph/query-parameters",
)


def display_name_targets(ctx: DoctorContext) -> list[tuple[int, PortalSettings]]:
    """(index in the stack file, portal) for each portal doctor looks at."""
    return [(index, portal) for index, portal in enumerate(ctx.settings.portals) if portal in ctx.portals]


def check_display_name(ctx: DoctorContext, index: int, portal: PortalSettings) -> Check:
    name = display_name(portal.name, ctx.settings.environment)
    check_id, title = f"display-name/{portal.name}", f"No application is named {name!r} yet"
    found = _objects(
        ctx.graph.get_collection(
            "/applications",
            {
                "$filter": f"displayName eq {odata_string(name)}",
                "$select": "id,appId,displayName,passwordCredentials",
            },
        ),
        "applications",
    )
    same = [
        app
        for app in found
        if isinstance(app.get("displayName"), str)
        and app["displayName"].casefold() == name.casefold()
        and isinstance(app.get("id"), str)
    ]
    if not same:
        return Check(check_id, PASS, title, f"no application named {name!r}", sources=DISPLAY_NAME_SOURCES)
    lines: list[str] = []
    adopt = ""
    for app in same:
        app_id = app.get("appId") if isinstance(app.get("appId"), str) and is_guid(app["appId"]) else None
        sp = None
        if app_id:
            sp = _first_id(
                ctx.graph.get_collection(
                    "/servicePrincipals", {"$filter": f"appId eq {odata_string(app_id)}", "$select": "id"}
                ),
                "servicePrincipals",
            )
        sp_id = sp["id"] if sp else None
        lines.append(
            f"an application named {name!r} exists: applicationObjectId {one_line(app['id'], 40)}, "
            f"appId {app_id or '?'}, servicePrincipalObjectId {sp_id or 'none'}"
        )
        if not adopt and is_guid(app["id"]):
            adopt = _adopt_block(ctx, portal, app, sp_id)
    remedy = (
        f"pulumi up refuses a second application of that name (prevent_duplicate_names). To take this "
        f"registration over, set in Pulumi.{ctx.stack}.yaml: portals[{index}].adopt: {adopt or '{...}'}"
        "; otherwise rename or delete it"
    )
    return Check(check_id, FAIL, title, "\n".join(lines), remedy, DISPLAY_NAME_SOURCES)


# What `adopt` needs besides the two object ids: the consent objects Entra refuses to create twice, and the
# secrets made by hand. Delegated consent for all users is one oauth2PermissionGrant per client and resource with
# consentType AllPrincipals (GET /servicePrincipals/{id}/oauth2PermissionGrants, "Retrieve a list of
# oauth2PermissionGrant entities, representing delegated permissions granted to the service principal (as the
# client application)"); application consent is one appRoleAssignment per role (GET
# /servicePrincipals/{id}/appRoleAssignments); the secrets are the application's passwordCredentials (keyId), read
# with the application itself.
ADOPT_SOURCES = (
    "https://learn.microsoft.com/graph/api/serviceprincipal-list-oauth2permissiongrants",
    "https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments",
    "https://learn.microsoft.com/graph/api/resources/passwordcredential",
)


def _adopt_block(ctx: DoctorContext, portal: PortalSettings, app: dict[str, Any], sp_id: str | None) -> str:
    """The `adopt` value for Pulumi.<stack>.yaml, as a YAML flow mapping, with every id doctor could read."""
    parts = [f"applicationObjectId: {app['id'].lower()}", f"servicePrincipalObjectId: {sp_id or '<create one first>'}"]
    try:
        grants = _existing_grants(ctx, portal, sp_id) if sp_id else {}
        roles = _existing_role_assignments(ctx, portal, sp_id) if sp_id else {}
        secrets = _hand_made_secrets(app)
    except GraphError as error:
        # The two object ids are what matters; the rest is a convenience the identity may not be allowed to read.
        return "{" + ", ".join(parts) + "}" + f" (consent and secret ids not readable: {error})"
    if grants:
        parts.append("grants: {" + ", ".join(f"{key}: {grants[key]}" for key in sorted(grants)) + "}")
    if roles:
        parts.append("roleAssignments: {" + ", ".join(f"{key}: {roles[key]}" for key in sorted(roles)) + "}")
    if secrets:
        parts.append(f"handMadeSecretKeyIds: [{', '.join(secrets)}]")
    return "{" + ", ".join(parts) + "}"


def _resource_keys(ctx: DoctorContext, keys: set[str]) -> dict[str, str]:
    """Service principal object id (lower case) -> catalogue resource key, for the resource APIs in `keys`."""
    found = {}
    for key in sorted(keys):
        resource = load_catalogue().resources[key]
        sp = _first_id(
            ctx.graph.get_collection(
                "/servicePrincipals", {"$filter": f"appId eq {odata_string(resource.app_id)}", "$select": "id"}
            ),
            "servicePrincipals",
        )
        if sp:
            found[sp["id"].lower()] = key
    return found


def _existing_grants(ctx: DoctorContext, portal: PortalSettings, sp_id: str) -> dict[str, str]:
    wanted = {p.resource for p in portal.permissions if p.kind is PermissionType.SCOPE}
    if not wanted:
        return {}
    resources = _resource_keys(ctx, wanted)
    grants: dict[str, str] = {}
    items = ctx.graph.get_collection(f"/servicePrincipals/{quote(sp_id, safe='')}/oauth2PermissionGrants")
    for grant in _objects(items, "oauth2PermissionGrants"):
        key = resources.get(str(grant.get("resourceId", "")).lower())
        grant_id = grant.get("id")
        if (
            key
            and grant.get("consentType") == "AllPrincipals"
            and isinstance(grant_id, str)
            and GRAPH_OBJECT_ID.match(grant_id)
        ):
            grants.setdefault(key, grant_id)
    return grants


def _existing_role_assignments(ctx: DoctorContext, portal: PortalSettings, sp_id: str) -> dict[str, str]:
    wanted = {
        p.id.lower(): p.name
        for p in portal.permissions
        if p.kind is PermissionType.ROLE and not portal.exchange_rbac(p)
    }
    if not wanted:
        return {}
    assignments: dict[str, str] = {}
    items = ctx.graph.get_collection(f"/servicePrincipals/{quote(sp_id, safe='')}/appRoleAssignments")
    for assignment in _objects(items, "appRoleAssignments"):
        name = wanted.get(str(assignment.get("appRoleId", "")).lower())
        assignment_id = assignment.get("id")
        if name and isinstance(assignment_id, str) and GRAPH_OBJECT_ID.match(assignment_id):
            assignments.setdefault(name, assignment_id)
    return assignments


def _hand_made_secrets(app: dict[str, Any]) -> list[str]:
    """The keyIds of the application's secrets (read with it: `$select=...,passwordCredentials`)."""
    credentials = _at(app, "passwordCredentials", list, "application", [])
    return sorted(
        {
            c["keyId"].lower()
            for c in credentials
            if isinstance(c, dict) and isinstance(c.get("keyId"), str) and is_guid(c["keyId"])
        }
    )


# 5. EWS allow list ------------------------------------------------------------------------------------------
#
# Exchange Online blocks EWS from 2026-10-01 unless EWSEnabled is $true and the app is in EwsAllowedAppIDs
# (components/catalogue.py; Set-OrganizationConfig -EwsAllowedAppIDs, office-docs-powershell PR 13643). Graph
# cannot read that list; Exchange Online PowerShell can: "Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy
# | Format-List EwsAllowedAppIDs", the switch being required "for performance reasons" (Exchange Team blog,
# "Introducing EWSAllowedAppIDs", techcommunity.microsoft.com). EwsEnabled is a property of the same object.

EWS_SOURCES = (
    "https://learn.microsoft.com/powershell/module/exchangepowershell/set-organizationconfig",
    "https://techcommunity.microsoft.com/blog/exchange/introducing-ewsallowedappids-preparing-for-the-final-phase-"
    "of-ews-retirement/4529471",
)
EWS_READ_COMMAND = "Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy | Format-List EwsEnabled,EwsAllowedAppIDs"


def check_ews(ctx: DoctorContext) -> list[Check]:
    checks = []
    for portal in ctx.portals:
        if not uses_ews(portal):
            continue
        checks.append(
            Check(
                f"ews-allow-list/{portal.name}",
                WARN,
                "The tenant's EWS allow list will admit this portal",
                f"portal {portal.name!r} uses EWS, which Exchange Online allows only to the apps in the tenant's EWS "
                "allow list (with EwsEnabled $true); Microsoft Graph cannot read that list. Check it in Exchange "
                f"Online PowerShell: {EWS_READ_COMMAND}",
                "after pulumi up, an Exchange administrator runs the portal's rendered ews-allow-list.ps1 "
                f"(build/{ctx.stack}/{portal.name}/): it reads the list, adds the portal's clientId and writes the "
                "whole list back (Set-OrganizationConfig -EwsAllowedAppIDs replaces it)",
                EWS_SOURCES,
            )
        )
    return checks
