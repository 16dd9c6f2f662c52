"""Comparing one run's outputs with the next: what a rotation handed over, what a change does to the portals.

Both read an earlier outputs document (`pulumi stack output --json`, secrets hidden or not) that may come from an
older version of the program, so they read only the few fields they need, each checked, instead of the whole
output contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from components.config import StackSettings
from components.contract import PORTALS, PortalOutput

from .errors import OutputsError


def previous_portals(text: str, source: str) -> dict[str, Mapping[str, object]]:
    """The `portals` entries of an earlier outputs document, by name; `{}` for an empty document (a stack that was
    never deployed: `pulumi stack output --json` prints `{}`)."""
    try:
        document = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise OutputsError(f"{source}: not JSON; expected what `pulumi stack output --json` prints") from None
    if not isinstance(document, Mapping):
        raise OutputsError(f"{source}: must be a JSON object, as `pulumi stack output --json` prints it")
    portals = document.get(PORTALS, {})
    if not isinstance(portals, Mapping) or not all(isinstance(entry, Mapping) for entry in portals.values()):
        raise OutputsError(f"{source}: '{PORTALS}' must map portal names to objects")
    return {str(name): entry for name, entry in portals.items()}


def _text(entry: Mapping[str, object], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) else None


# The rotation notice -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandedOver:
    """A portal whose published client secret changed in this run."""

    portal: str
    environment: str
    previous_secret_stops: date
    sign_in: bool
    connector_file: str

    def as_dict(self) -> dict[str, object]:
        return {
            "portal": self.portal,
            "environment": self.environment,
            "previousSecretStops": self.previous_secret_stops.isoformat(),
            "signIn": self.sign_in,
        }


STACK_UNKNOWN = "<stack>"  # portals of several environments and no --stack: the reader fills it in


@dataclass(frozen=True)
class RotationNotice:
    stack: str
    portals: list[HandedOver] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"stack": self.stack, "portals": [p.as_dict() for p in self.portals]}

    def markdown(self) -> str:
        """The notice people read in a job summary or an issue (templates/rotation-notice.md.j2): no secret, exact
        commands, every value literal Markdown. Empty when nothing changed."""
        if not self.portals:
            return ""
        from .render import render_template

        return render_template(
            "rotation-notice.md.j2",
            stack=self.stack,
            portals=self.portals,
            deadline=min(p.previous_secret_stops for p in self.portals),
            sign_in=[p.portal for p in self.portals if p.sign_in],
        )


def rotation_notice(before_text: str, after: list[PortalOutput], stack: str | None) -> RotationNotice:
    """The portals whose published secret (`secretKeyId`) differs from the one in `before_text`. A portal that is
    new in this run has no secret in Intrexx yet, so it is not a handover. `stack` names the stack in the notice's
    commands; without it, the outputs' environment (the stack's name unless the stack sets another)."""
    from .status import stack_label

    environments = {portal.environment for portal in after}
    # The environment is free text: only a Pulumi stack name goes into the notice's commands.
    stack = stack or (stack_label(environments.pop()) if len(environments) == 1 else STACK_UNKNOWN)
    before = previous_portals(before_text, "--before")
    handed = []
    for portal in after:
        old = before.get(portal.name)
        if old is None:
            continue
        if _text(old, "secretKeyId") != portal.secret_key_id:
            connector_file = f"{portal.connector.value}-connector.json"
            handed.append(
                HandedOver(
                    portal.name, portal.environment, portal.previous_secret_expires_at, portal.sign_in, connector_file
                )
            )
    return RotationNotice(stack, handed)


# plan --compare --------------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> new name
    changed: dict[str, list[str]] = field(default_factory=dict)  # portal -> changed output fields
    problems: list[str] = field(default_factory=list)  # a registration would be deleted or replaced: exit 1
    hints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "removed": self.removed,
            "renamed": self.renamed,
            "changed": self.changed,
            "problems": self.problems,
            "hints": self.hints,
        }


# Output fields whose change a user should see before `pulumi up`; ids Entra assigns are left out.
COMPARED_FIELDS = (
    "displayName",
    "connector",
    "access",
    "redirectUris",
    "scopes",
    "signIn",
    "publicClient",
    "mailboxScope",
    "cloud",
    "authorityHost",
)


def compare(previous_text: str, planned: list[PortalOutput], settings: StackSettings, source: str) -> Comparison:
    """What `pulumi up` of `settings` does to the portals of an earlier run. `problems` lists every registration
    that run would delete or replace, so that Intrexx loses its client id: a removed portal (also a rename without
    `renamedFrom`, which is a removal and an addition), and a portal whose `adopt` names another application than
    the one deployed. `plan --compare` exits 1 when there is one (shared/spec/contract.md)."""
    previous = previous_portals(previous_text, source)
    planned_by_name = {portal.name: portal for portal in planned}
    settings_by_name = {portal.name: portal for portal in settings.portals}
    renamed_to = {p.renamed_from: p.name for p in settings.portals if p.renamed_from is not None}
    result = Comparison()
    for name, old in sorted(previous.items()):
        new_name = name if name in planned_by_name else renamed_to.get(name)
        if new_name is None:
            result.removed.append(name)
            result.problems.append(
                f"{name}: pulumi up deletes its registration (client id {_text(old, 'clientId') or '?'}) and Intrexx "
                f"loses it; if the portal was renamed, add `renamedFrom: {name}` to its new entry"
            )
            continue
        if new_name != name:
            result.renamed[name] = new_name
        portal = planned_by_name[new_name]
        adopt = settings_by_name[new_name].adopt
        old_object = _text(old, "applicationObjectId")
        if adopt is not None and old_object and adopt.application_object_id != old_object.lower():
            result.problems.append(
                f"{new_name}: adopt.applicationObjectId {adopt.application_object_id} is not the deployed application "
                f"{old_object} (client id {_text(old, 'clientId') or '?'}): pulumi up would replace it and Intrexx's "
                "client id would change; remove `adopt` or correct the object id"
            )
        output = portal.to_output()
        fields = [key for key in COMPARED_FIELDS if key in old and old.get(key) != output.get(key)]
        permissions = {(p.name, p.type.value) for p in portal.permissions}
        old_permissions = old.get("permissions")
        if isinstance(old_permissions, list) and permissions != {
            (str(p.get("name")), str(p.get("type"))) for p in old_permissions if isinstance(p, Mapping)
        }:
            fields.append("permissions")
        if fields:
            result.changed[new_name] = fields
    matched = set(previous) | set(result.renamed.values())
    result.added = sorted(name for name in planned_by_name if name not in matched)
    if result.removed and result.added:
        result.hints.append(
            f"{', '.join(result.removed)} removed and {', '.join(result.added)} added: if a portal was renamed, "
            "add `renamedFrom: <old name>` to it, or pulumi up deletes the old registration and Intrexx needs the "
            "new client id"
        )
    if result.removed and settings.protect:
        result.hints.append(
            "this stack protects its registrations (protect: true): pulumi up refuses to delete "
            f"{', '.join(result.removed)} until you run `pulumi state unprotect` for their Application and "
            "ServicePrincipal (README: Lifecycle)"
        )
    return result
