"""Offline plan: the program function for Pulumi.<stack>.yaml, evaluated against the simulated tenant."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from components.config import StackSettings
from components.contract import CLIENT_SECRETS, PORTALS, PortalOutput
from components.facts import PLACEHOLDER_SECRET
from components.portal import COMPONENT_TYPE
from components.stack_file import default_project_dir, load_stack_settings, stack_file_path
from components.tenant import TenantError

from .errors import RefusedByTenant, UsageError
from .simulation import (
    APP_ROLE_ASSIGNMENT,
    APPLICATION,
    APPLICATION_PASSWORD,
    DELEGATED_GRANT,
    SERVICE_PRINCIPAL,
    EntraRefusal,
    Evaluation,
    Recorded,
    evaluate,
    tenant_for_plan,
)

_CREATION_ORDER = (APPLICATION, SERVICE_PRINCIPAL, DELEGATED_GRANT, APP_ROLE_ASSIGNMENT, APPLICATION_PASSWORD)


@dataclass(frozen=True)
class Plan:
    stack: str
    today: date
    settings: StackSettings
    evaluation: Evaluation

    def portal_outputs(self) -> list[PortalOutput]:
        """What `render` would get after `pulumi up`, with a placeholder instead of each secret."""
        portals = self.evaluation.outputs[PORTALS]
        return [
            PortalOutput.from_output(portals[name], f"{PORTALS}.{name}").with_secret(PLACEHOLDER_SECRET)
            for name in sorted(portals)
        ]

    def outputs_document(self) -> dict[str, Any]:
        """The simulated outputs as `pulumi stack output --json --show-secrets` prints them, placeholder secrets."""
        portals = self.evaluation.outputs[PORTALS]
        return {PORTALS: portals, CLIENT_SECRETS: {name: PLACEHOLDER_SECRET for name in portals}}

    def as_dict(self) -> dict[str, Any]:
        outputs = {portal.name: portal for portal in self.portal_outputs()}
        components = {r.urn: r.name for r in self.evaluation.of_type(COMPONENT_TYPE)}
        by_portal: dict[str, list[Recorded]] = {}
        for resource in self.evaluation.tenant.resources:
            if resource.parent in components:
                by_portal.setdefault(components[resource.parent], []).append(resource)
        notes = []
        if self.settings.deployers is None:
            notes.append(
                "`deployers` is not set: the identity that runs `pulumi up` becomes the owner of every registration "
                "(with portals[].owners), and a run by another identity (a person, then the pipeline) replaces it. "
                "Set `deployers` to the object ids of the pipeline's service principal and the administrators."
            )
        return {
            "stack": self.stack,
            "date": self.today.isoformat(),
            "resources": sum(len(own) for own in by_portal.values()),
            "warnings": list(self.evaluation.warnings),
            "notes": notes,
            PORTALS: {name: _portal(outputs[name], by_portal.get(name, [])) for name in sorted(outputs)},
        }


def _portal(portal: PortalOutput, own: list[Recorded]) -> dict[str, Any]:
    own = sorted(own, key=lambda r: (_CREATION_ORDER.index(r.type), r.name))
    roles = {p.id: p.name for p in portal.permissions}
    consent = []
    for r in own:
        if r.type == DELEGATED_GRANT:
            consent.append({"kind": "delegated grant for all users", "claims": r.inputs["claimValues"]})
        elif r.type == APP_ROLE_ASSIGNMENT:
            consent.append({"kind": "app role assignment", "claims": [roles[r.inputs["appRoleId"]]]})
    secrets = [
        {
            "slot": r.name.rsplit("-", 1)[1],
            "expires": r.inputs["endDate"],
            "rotationKey": r.inputs["rotateWhenChanged"]["period"],
        }
        for r in own
        if r.type == APPLICATION_PASSWORD
    ]
    output = portal.to_output()
    return {
        "displayName": portal.display_name,
        "connector": output["connector"],
        "api": output["api"],
        "access": output["access"],
        "publicClient": portal.public_client,
        "redirectUris": output["redirectUris"],
        "permissions": [
            {key: p[key] for key in ("resource", "name", "type", "grantedBy")} for p in output["permissions"]
        ],
        "consent": consent,
        "secrets": sorted(secrets, key=lambda s: s["slot"]),
        "secretExpiresAt": output["secretExpiresAt"],
        "secretRotatesAt": output["secretRotatesAt"],
        "resources": [
            {
                "type": r.type.split(":")[-1],
                "name": r.name,
                "protect": r.protect,
                "action": "adopt" if r.import_id else "create",
                "importId": r.import_id or None,
            }
            for r in own
        ],
    }


def plan_stack(stack: str, today: date, project_dir: Path | None = None) -> Plan:
    """Plan Pulumi.<stack>.yaml. Raises UsageError for a missing stack file, StackFileError for an unreadable
    one, ConfigError for bad configuration."""
    project_dir = project_dir or default_project_dir()
    try:
        settings = load_stack_settings(stack, project_dir, today)
    except FileNotFoundError:
        path = stack_file_path(stack, project_dir)
        raise UsageError(f"--stack {stack}: no stack file {path.name} in {project_dir}") from None
    try:
        evaluation = evaluate(settings, tenant_for_plan(settings))
    except (EntraRefusal, TenantError) as refusal:
        raise RefusedByTenant(f"the simulated tenant refuses it, as Entra would: {refusal}") from None
    return Plan(stack, today, settings, evaluation)
