"""Offline plan: the real program, evaluated for Pulumi.<stack>.yaml against the simulated tenant."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from components.names import CLIENT_SECRETS, PORTALS, Field, PermissionField
from components.simulation import (
    APP_ROLE_ASSIGNMENT,
    APPLICATION,
    APPLICATION_PASSWORD,
    DELEGATED_GRANT,
    PORTAL_COMPONENT,
    PROJECT_DIR,
    SERVICE_PRINCIPAL,
    Evaluation,
    evaluate,
    stack_file_config,
)

from .errors import UsageError
from .stack_outputs import PortalOutputs

PLACEHOLDER_SECRET = "PLACEHOLDER-run-make-up-for-the-real-secret"
_CREATION_ORDER = (APPLICATION, SERVICE_PRINCIPAL, DELEGATED_GRANT, APP_ROLE_ASSIGNMENT, APPLICATION_PASSWORD)


@dataclass(frozen=True)
class Plan:
    stack: str
    today: date
    evaluation: Evaluation

    def portal_outputs(self) -> list[PortalOutputs]:
        """What `render` would get after `pulumi up`, with a placeholder instead of each secret."""
        portals = self.evaluation.outputs[PORTALS]
        return [PortalOutputs(name, portals[name], PLACEHOLDER_SECRET) for name in sorted(portals)]

    def as_dict(self) -> dict:
        portals = self.evaluation.outputs[PORTALS]
        by_portal = {}
        for resource in self.evaluation.tenant.resources:
            if resource.type != PORTAL_COMPONENT:
                by_portal.setdefault(resource.parent.rsplit("::", 1)[-1], []).append(resource)
        return {
            "stack": self.stack,
            "date": self.today.isoformat(),
            "resources": sum(len(own) for own in by_portal.values()),
            "warnings": list(self.evaluation.warnings),
            PORTALS: {name: self._portal(portals[name], by_portal.get(name, [])) for name in sorted(portals)},
        }

    @staticmethod
    def _portal(fields: dict, own: list) -> dict:
        own = sorted(own, key=lambda r: (_CREATION_ORDER.index(r.type), r.name))
        consent = []
        for r in own:
            if r.type == DELEGATED_GRANT:
                consent.append({"kind": "delegated grant for all users", "claims": r.inputs["claimValues"]})
            elif r.type == APP_ROLE_ASSIGNMENT:
                role = next(p[PermissionField.NAME] for p in fields[Field.PERMISSIONS]
                            if p[PermissionField.ID] == r.inputs["appRoleId"])
                consent.append({"kind": "app role assignment", "claims": [role]})
        secrets = [{"slot": r.name.rsplit("-", 1)[1], "expires": r.inputs["endDate"],
                    "rotationKey": r.inputs["rotateWhenChanged"]["period"]}
                   for r in own if r.type == APPLICATION_PASSWORD]
        return {
            "displayName": fields[Field.DISPLAY_NAME],
            "api": fields[Field.API],
            "access": fields[Field.ACCESS],
            "publicClient": fields[Field.PUBLIC_CLIENT],
            "redirectUris": fields[Field.REDIRECT_URIS],
            "permissions": [{k: p[k] for k in (PermissionField.RESOURCE, PermissionField.NAME, PermissionField.TYPE,
                                               PermissionField.GRANTED_BY)} for p in fields[Field.PERMISSIONS]],
            "consent": consent,
            "secrets": sorted(secrets, key=lambda s: s["slot"]),
            "secretExpiresAt": fields[Field.SECRET_EXPIRES_AT],
            "secretRotatesAt": fields[Field.SECRET_ROTATES_AT],
            "resources": [{"type": r.type.split(":")[-1], "name": r.name, "protect": r.protect} for r in own],
        }


def plan_stack(stack: str, today: date, stack_dir: Path | None = None) -> Plan:
    """Plan Pulumi.<stack>.yaml from `stack_dir` (default: the current directory when it holds a Pulumi.yaml,
    as for `pulumi`, else this project). Raises UsageError for a missing stack file, ConfigError for bad config."""
    if stack_dir is None:
        stack_dir = Path.cwd() if (Path.cwd() / "Pulumi.yaml").is_file() else PROJECT_DIR
    try:
        config = stack_file_config(stack, stack_dir)
    except FileNotFoundError as error:
        raise UsageError(f"--stack {stack}: {error}") from None
    evaluation = evaluate(config, stack, today)
    assert CLIENT_SECRETS in evaluation.outputs and not evaluation.unknown_outputs
    return Plan(stack, today, evaluation)
