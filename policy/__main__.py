"""entra-app-guardrails: a Pulumi policy pack for Entra ID app registrations made with pulumi-azuread.

The engine starts it as `python -u -m pulumi.policy <engine address> <pack folder>` in this folder
(pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go, RunPlugin); `pulumi.policy` runs this file, and
`PolicyPack(...)` serves the Analyzer gRPC service on 127.0.0.1 and prints its port (pulumi_policy/policy.py).
The rules live in entra_guardrails.py; this file only declares the policies. See README.md for the config keys.
entra_guardrails.py loads ../components/facts.py by its path; without it the pack stops with one line saying so.
"""

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

try:
    import entra_guardrails as rules
except ImportError as error:  # entra_guardrails.FactsNotFound, or a dependency missing from policy/venv
    raise SystemExit(f"entra-app-guardrails cannot start: {error}") from None
import pulumi_policy.policy
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_DIR = Path(__file__).resolve().parent


MAX_DEPTH = 64  # deeper values reach the rules as a string saying so


class _JsonFormatForAnyValue:
    """google.protobuf.json_format as the SDK's servicer uses it (pulumi_policy/policy.py reads every Struct it
    receives through `json_format.MessageToDict`: Analyze, AnalyzeStack, Remediate, Configure), except for two
    values protobuf carries and the conversion cannot take, which would fail the whole preview with a gRPC error:

    - a number JSON cannot hold (NaN, +-Infinity: a program may write float("inf") into any property), where
      MessageToDict raises ValueError ("Fail to serialize Infinity for Value.number_value"): it reaches the
      policies as the string protobuf's JSON mapping names it ("NaN", "Infinity", "-Infinity");
    - a value nested so deeply that the conversion (and the SDK's deserializer after it) exceeds Python's
      recursion limit: anything below MAX_DEPTH levels reaches the policies as a string saying so.
    """

    def __getattr__(self, name: str) -> object:
        return getattr(json_format, name)

    @staticmethod
    def MessageToDict(message: Message, **options: Any) -> dict[str, Any]:  # noqa: N802 - the name the SDK calls
        try:
            return json_format.MessageToDict(message, **options)
        except (ValueError, RecursionError):
            tamed = type(message)()
            tamed.CopyFrom(message)
            _tame(tamed)
            return json_format.MessageToDict(tamed, **options)


def _tame(message: Message) -> None:
    """Rewrite, in place and without recursion, what MessageToDict cannot convert (see _JsonFormatForAnyValue)."""
    values: list[tuple[struct_pb2.Value, int]] = []
    if isinstance(message, struct_pb2.Struct):
        values = [(value, 1) for value in message.fields.values()]
    elif isinstance(message, struct_pb2.ListValue):
        values = [(value, 1) for value in message.values]
    while values:
        value, depth = values.pop()
        kind = value.WhichOneof("kind")
        if kind in ("struct_value", "list_value") and depth >= MAX_DEPTH:
            value.string_value = f"<a value nested more than {MAX_DEPTH} levels deep>"
        elif kind == "number_value" and not math.isfinite(value.number_value):
            value.string_value = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(value.number_value)]
        elif kind == "struct_value":
            values.extend((item, depth + 1) for item in value.struct_value.fields.values())
        elif kind == "list_value":
            values.extend((item, depth + 1) for item in value.list_value.values)


pulumi_policy.policy.json_format = _JsonFormatForAnyValue()

DEFAULT_CATALOGUE = "../components/catalogue.yaml"  # the intrexx-exchange permission catalogue, beside this pack


def _resource_policy(
    types: tuple[str, ...], check: Callable[[ResourceValidationArgs], Iterable[str]]
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A validate callback running `check(args)` on resources of `types`, reporting each message on the resource."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in types:
            return
        for message in check(args):
            report_violation(message, args.urn)

    return validate


def _catalogue(config: Mapping) -> rules.RoleCatalogue:
    path = Path(config.get("cataloguePath") or DEFAULT_CATALOGUE)
    return rules.load_role_catalogue(str(path if path.is_absolute() else (PACK_DIR / path).resolve()))


def _plain(value: object) -> object:
    """The SDK's unknown-checking proxies unwrapped into dicts and lists, with rules.UNKNOWN for unknown values."""
    if isinstance(value, Mapping):
        result: dict[str, object] = {}
        for key in value:
            try:
                result[key] = _plain(value[key])
            except UnknownValueError:
                result[key] = rules.UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items: list[object] = []
        for index in range(len(value)):
            try:
                items.append(_plain(value[index]))
            except UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def _stack_resources(args: StackValidationArgs) -> list:
    return [
        rules.StackResource(
            urn=r.urn,
            type=r.resource_type,
            name=r.name,
            props=cast(dict, _plain(r.props)),  # the properties are a mapping, so _plain gives a dict
            dependencies={d.urn for d in r.dependencies},
            property_dependencies={key: {d.urn for d in deps} for key, deps in r.property_dependencies.items()},
        )
        for r in args.resources
    ]


def _stack_policy(
    find: Callable[[list], list[tuple[str, str]]],
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, message in find(_stack_resources(args)):
            report_violation(message, urn)

    return validate


password_lifetime = ResourceValidationPolicy(
    name="application-password-lifetime",
    description="Client secrets (ApplicationPassword) need an endDate at most maxSecretLifetimeDays ahead "
    "(default 180: CISA ScubaGear MS.AAD.5.6v1; intrexx-exchange secrets live 2 x secretRotationDays).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "maxSecretLifetimeDays": {
                "type": "integer",
                "minimum": 1,
                "maximum": rules.ENTRA_MAX_SECRET_DAYS,
                "default": rules.DEFAULT_MAX_SECRET_DAYS,
                "description": "Longest allowed secret lifetime in days (Entra's limit: "
                f"{rules.ENTRA_MAX_SECRET_DAYS}); intrexx-exchange stacks fit it with secretRotationDays of at most "
                "half of it.",
            },
        }
    ),
    remediation_steps="In an intrexx-exchange stack, lower secretRotationDays to at most half of "
    "maxSecretLifetimeDays (each secret lives 2 x secretRotationDays days); in another program, set end_date on the "
    "ApplicationPassword to at most maxSecretLifetimeDays from today.",
    validate=_resource_policy(
        (rules.APPLICATION_PASSWORD,),
        lambda args: rules.password_lifetime(
            args.props,
            rules.days_setting(args.get_config(), "maxSecretLifetimeDays", rules.DEFAULT_MAX_SECRET_DAYS),
            rules.now(),
        ),
    ),
)

redirect_uris = ResourceValidationPolicy(
    name="web-redirect-uris-https",
    description="Web redirect URIs use https (http only for localhost/127.0.0.1) and no wildcards.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Change web.redirect_uris to https URLs without '*'.",
    validate=_resource_policy(
        (rules.APPLICATION, rules.APPLICATION_REDIRECT_URIS),
        lambda args: rules.redirect_uris(args.resource_type, args.props),
    ),
)

sign_in_audience = ResourceValidationPolicy(
    name="single-tenant-sign-in-audience",
    description="Applications sign in accounts of this tenant only (signInAudience AzureADMyOrg) unless "
    "allowedSignInAudiences says otherwise.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedSignInAudiences": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(rules.SIGN_IN_AUDIENCES)},
                "default": [rules.DEFAULT_SIGN_IN_AUDIENCE],
                "description": "signInAudience values allowed.",
            },
        }
    ),
    remediation_steps='Set sign_in_audience="AzureADMyOrg", or allow the audience in allowedSignInAudiences.',
    validate=_resource_policy(
        rules.APPLICATION_TYPES,
        lambda args: rules.sign_in_audience(
            args.props, rules.audiences_setting(args.get_config(), "allowedSignInAudiences")
        ),
    ),
)

public_client = ResourceValidationPolicy(
    name="public-client-without-app-roles",
    description="Public client flows (fallbackPublicClientEnabled) only on applications that request no "
    "application permissions (requiredResourceAccesses of type Role).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(
        properties={
            "cataloguePath": {
                "type": "string",
                "default": DEFAULT_CATALOGUE,
                "description": "Permission catalogue used to name roles, relative to the pack.",
            },
        }
    ),
    remediation_steps="Set fallback_public_client_enabled=False, or split app-only permissions into another "
    "application.",
    validate=_resource_policy(
        (rules.APPLICATION,), lambda args: rules.public_client_flows(args.props, _catalogue(args.get_config()).roles)
    ),
)

ownership_notes = ResourceValidationPolicy(
    name="registration-names-its-owner",
    description="Applications say who owns them in notes or serviceManagementReference.",
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.LOW,
    remediation_steps="Set notes or service_management_reference to the owning team, service or ticket.",
    validate=_resource_policy(rules.APPLICATION_TYPES, lambda args: rules.ownership_notes(args.props)),
)

mailbox_roles = ResourceValidationPolicy(
    name="tenant-wide-mailbox-roles",
    description="Tenant-wide Exchange/Graph mailbox application roles (full_access_as_app, Mail.*, Calendars.*, "
    "Contacts.*, MailboxSettings.*) are reported: Exchange RBAC for Applications can scope them.",
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "cataloguePath": {
                "type": "string",
                "default": DEFAULT_CATALOGUE,
                "description": "Permission catalogue (YAML) naming the role ids, relative to the pack; "
                "without it the pack's built-in list is used.",
            },
        }
    ),
    remediation_steps="Remove the AppRoleAssignment; grant the role's Exchange RBAC for Applications role to a "
    "management scope instead.",
    validate=_resource_policy(
        (rules.APP_ROLE_ASSIGNMENT,),
        lambda args: rules.mailbox_role_assignment(args.props, _catalogue(args.get_config())),
    ),
)

application_owner = StackValidationPolicy(
    name="application-has-owner",
    description="Every application has at least one owner (owners, or an ApplicationOwner in the stack).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Set owners on the application to users or service principals.",
    validate=_stack_policy(rules.applications_without_owner),
)

application_service_principal = StackValidationPolicy(
    name="application-has-service-principal",
    description="Every application's service principal is managed in the same stack.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Add azuread.ServicePrincipal(client_id=<application>.client_id), or import the existing one.",
    validate=_stack_policy(rules.applications_without_service_principal),
)

PolicyPack(
    name="entra-app-guardrails",
    description="Guardrails for Entra ID app registrations made with pulumi-azuread.",
    policies=[
        password_lifetime,
        redirect_uris,
        sign_in_audience,
        public_client,
        ownership_notes,
        mailbox_roles,
        application_owner,
        application_service_principal,
    ],
)
