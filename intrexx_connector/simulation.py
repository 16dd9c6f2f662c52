"""A simulated Entra ID tenant, and the program function evaluated against it under Pulumi's mocks.

The tenant answers the azuread provider's invokes the way Entra does (Microsoft Graph's and Exchange Online's real
permission ids, from the catalogue), computes what Entra computes (object ids, client ids, secret values, returned
as Pulumi secrets), refuses what Entra refuses, and records every resource and call. `plan` uses it to show what
`pulumi up` would do; the tests use it to check the program.

Its refusal rules state Entra's limits themselves, each with its source, instead of borrowing the validator's
(components/config.py): the simulator is there to catch what the validator lets through.

Only Pulumi's public testing API is used (`pulumi.runtime.set_mocks`, `Mocks`, `MockResourceArgs`,
`MockCallArgs`, `pulumi.runtime.test`, the resource objects' `urn`), except in `_options_monitor`, which only adds
`protect` and aliases to what `plan` shows and degrades to a warning if Pulumi changes underneath it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import string
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from components.catalogue import load_catalogue
from components.config import StackSettings
from components.contract import CLIENT_SECRETS, PORTALS, PermissionType
from components.facts import is_guid
from components.program import Exports, build

PROJECT = "intrexx-exchange"

APPLICATION = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
DELEGATED_GRANT = "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
GET_CLIENT_CONFIG = "azuread:index/getClientConfig:getClientConfig"
GET_SERVICE_PRINCIPAL = "azuread:index/getServicePrincipal:getServicePrincipal"

# Entra's limits, as Microsoft documents them.
# learn.microsoft.com/entra/identity-platform/reply-url: https only, with exceptions for loopback addresses over
# http; "Redirect URIs don't support special characters: ! $ ' ( ) , ;"; at most 256 characters per URI; at most
# 256 redirect URIs for apps that sign in work or school accounts (AzureADMyOrg).
REDIRECT_URI_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
REDIRECT_URI_FORBIDDEN_CHARACTERS = frozenset("!$'(),;")
REDIRECT_URI_MAX_LENGTH = 256
REDIRECT_URI_MAX_COUNT = 256
# Client secrets: at most 24 months (the Entra admin center's longest choice; Microsoft recommends less).
SECRET_MAX_LIFETIME = timedelta(days=730)

_ID_NAMESPACE = uuid.UUID("6f1c2a8e-9d2b-4c51-8a57-0e7d3b5e2c10")
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


class ResourcePrincipal(TypedDict):
    """A Microsoft API's service principal in the tenant, as getServicePrincipal describes it."""

    objectId: str
    clientId: str
    displayName: str
    scopes: dict[str, str]  # delegated permission name -> id
    roles: dict[str, str]  # application permission name -> id


class EntraRefusal(Exception):
    """What Entra would answer with an error; fails the simulated deployment like a failed Graph call."""


@dataclass
class Recorded:
    """One resource the program registered: what Entra was asked (inputs) and what it answered (state)."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    state: dict[str, Any]
    import_id: str = ""  # Pulumi's `import_` option: an existing object adopted instead of created
    urn: str = ""
    parent: str = ""
    protect: bool = False
    aliases: list[str] = field(default_factory=list)  # names the resource had before (`aliases` option)


@dataclass(frozen=True)
class HandMadeRegistration:
    """A registration made by hand in the tenant's directory: what `portals[].adopt` imports."""

    display_name: str
    application_object_id: str
    client_id: str
    service_principal_object_id: str
    grants: dict[str, str] = field(default_factory=dict)  # resource app id (client id) -> oauth2PermissionGrant id
    role_assignments: dict[str, str] = field(default_factory=dict)  # app role id -> appRoleAssignment id


class SimulatedTenant(Mocks):
    """A `pulumi.runtime.Mocks` implementation that behaves like an Entra ID tenant.

    Its directory knows which object ids are groups (`groups`), and may hold registrations made by hand
    (`hand_made`), which the program can only import, not create again."""

    def __init__(
        self,
        today: date,
        tenant_id: str | None = None,
        deployer_object_id: str | None = None,
        existing_display_names: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
        hand_made: tuple[HandMadeRegistration, ...] = (),
    ):
        self.today = today
        self.stack = ""  # set by `evaluate`: the stack the program runs for
        self.tenant_id = tenant_id or self._id("tenant")
        self.deployer_object_id = deployer_object_id or self._id("deployer")
        self.resources: list[Recorded] = []
        # (type, name) -> (protect, alias names), as the options monitor saw them
        self.options: dict[tuple[str, str], tuple[bool, list[str]]] = {}
        self.calls: list[dict[str, Any]] = []
        self.groups = {group.lower() for group in groups}
        self.display_names = set(existing_display_names) | {r.display_name for r in hand_made}
        self.applications: dict[str, str] = {r.application_object_id: r.client_id for r in hand_made}
        self.secret_values: dict[str, str] = {}  # ApplicationPassword resource name -> the value Entra generated
        # service principal object id -> client id
        self.service_principals: dict[str, str] = {r.service_principal_object_id: r.client_id for r in hand_made}
        catalogue = load_catalogue()
        self.resource_service_principals: dict[str, ResourcePrincipal] = {
            app.app_id: {
                "objectId": self._id(f"resource-sp/{app.app_id}"),
                "clientId": app.app_id,
                "displayName": app.display_name,
                "scopes": {p.name: p.id for p in app.permissions.values() if p.kind is PermissionType.SCOPE},
                "roles": {p.name: p.id for p in app.permissions.values() if p.kind is PermissionType.ROLE},
            }
            for app in catalogue.resources.values()
        }
        self._by_object_id = {sp["objectId"]: sp for sp in self.resource_service_principals.values()}
        # Consent that exists already: (client service principal, resource service principal) -> grant id, and
        # (client service principal, app role id) -> assignment id.
        self.grants: dict[tuple[str, str], str] = {}
        self.assignments: dict[tuple[str, str], str] = {}
        for registration in hand_made:
            for app_id, grant in registration.grants.items():
                resource = self.resource_service_principals[app_id]["objectId"]
                self.grants[(registration.service_principal_object_id, resource)] = grant
            for role, assignment in registration.role_assignments.items():
                self.assignments[(registration.service_principal_object_id, role)] = assignment

    def _id(self, name: str) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, name))

    # pulumi.runtime.Mocks ----------------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> dict:  # type: ignore[override]  # the monitor also takes a bare dict
        self.calls.append({"token": args.token, "args": dict(args.args)})
        if args.token == GET_CLIENT_CONFIG:
            return {
                "clientId": self._id("deployer-app"),
                "objectId": self.deployer_object_id,
                "tenantId": self.tenant_id,
            }
        if args.token == GET_SERVICE_PRINCIPAL:
            sp = self.resource_service_principals.get(str(args.args.get("clientId")))
            if sp is None:
                raise EntraRefusal(
                    f"Request_ResourceNotFound: no service principal with client id "
                    f"{args.args.get('clientId')!r} in tenant {self.tenant_id}"
                )
            return {
                "id": sp["objectId"],
                "objectId": sp["objectId"],
                "clientId": sp["clientId"],
                "displayName": sp["displayName"],
                "appRoleIds": sp["roles"],
                "oauth2PermissionScopeIds": sp["scopes"],
                "appRoles": [
                    {
                        "id": i,
                        "value": n,
                        "displayName": n,
                        "enabled": True,
                        "allowedMemberTypes": ["Application"],
                        "description": n,
                    }
                    for n, i in sp["roles"].items()
                ],
                "oauth2PermissionScopes": [
                    {
                        "id": i,
                        "value": n,
                        "enabled": True,
                        "type": "User",
                        "adminConsentDescription": n,
                        "adminConsentDisplayName": n,
                        "userConsentDescription": n,
                        "userConsentDisplayName": n,
                    }
                    for n, i in sp["scopes"].items()
                ],
            }
        raise EntraRefusal(f"the simulated tenant does not answer {args.token}")

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        handler = {
            APPLICATION: self._application,
            SERVICE_PRINCIPAL: self._service_principal,
            APPLICATION_PASSWORD: self._password,
            DELEGATED_GRANT: self._delegated_grant,
            APP_ROLE_ASSIGNMENT: self._app_role_assignment,
        }.get(args.typ)
        state: dict[str, Any]
        import_id = args.resource_id or ""
        if handler is None:
            resource_id, state = f"{args.name}-id", {}
        else:
            resource_id, state = handler(args.name, args.inputs, import_id)
        self.resources.append(Recorded(args.typ, args.name, args.inputs, resource_id, state, import_id=import_id))
        return resource_id, {**args.inputs, **state}

    # resources -----------------------------------------------------------------------------------------------

    def _application(self, name: str, inputs: dict, import_id: str) -> tuple[str, dict]:
        display_name = inputs.get("displayName", "")
        if not display_name:  # Graph: displayName is required when an application is created
            raise EntraRefusal(f"{name}: displayName is required")
        self._check_owners(name, inputs.get("owners", []))
        uris = (inputs.get("web") or {}).get("redirectUris", [])
        if len(set(uris)) != len(uris):
            raise EntraRefusal(f"{name}: redirect URIs must be unique")
        if len(uris) > REDIRECT_URI_MAX_COUNT:
            raise EntraRefusal(f"{name}: at most {REDIRECT_URI_MAX_COUNT} redirect URIs")
        for uri in uris:
            self._check_redirect_uri(name, uri)
        for access in inputs.get("requiredResourceAccesses", []):
            sp = self.resource_service_principals.get(access["resourceAppId"])
            if sp is None:
                raise EntraRefusal(f"{name}: unknown resource app {access['resourceAppId']}")
            for item in access["resourceAccesses"]:
                published = sp["scopes"] if item["type"] == "Scope" else sp["roles"]
                if item["type"] not in ("Scope", "Role") or item["id"] not in published.values():
                    raise EntraRefusal(f"{name}: {sp['displayName']} has no {item['type']} with id {item['id']}")
        if import_id:
            object_id = import_id.removeprefix("/applications/")
            if not import_id.startswith("/applications/") or object_id not in self.applications:
                raise EntraRefusal(f"{name}: no application to import as {import_id!r} (expected /applications/<id>)")
            return import_id, {
                "objectId": object_id,
                "clientId": self.applications[object_id],
                "publisherDomain": "contoso.onmicrosoft.com",
            }
        if inputs.get("preventDuplicateNames") and display_name in self.display_names:
            raise EntraRefusal(
                f"{name}: an application named {display_name!r} already exists (prevent_duplicate_names)"
            )
        self.display_names.add(display_name)
        object_id, client_id = self._id(f"application/{name}"), self._id(f"client/{name}")
        self.applications[object_id] = client_id
        return f"/applications/{object_id}", {
            "objectId": object_id,
            "clientId": client_id,
            "publisherDomain": "contoso.onmicrosoft.com",
        }

    def _check_owners(self, name: str, owners: list) -> None:
        """Owners of applications and service principals are users or service principals, never groups
        (learn.microsoft.com/graph/api/application-post-owners and serviceprincipal-post-owners take a user or a
        service principal as the new owner)."""
        for owner in owners:
            if not is_guid(owner):
                raise EntraRefusal(f"{name}: owner {owner!r} is not an object id")
            if str(owner).lower() in self.groups:
                raise EntraRefusal(
                    f"{name}: owner {owner} is a group; owners of applications and service principals must be users "
                    "or service principals"
                )

    @staticmethod
    def _check_redirect_uri(name: str, uri: str) -> None:
        try:
            parts = urlsplit(uri)
            host = (
                parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0]
                if not parts.netloc.endswith("]")
                else parts.netloc.rsplit("@", 1)[-1]
            )
        except ValueError:
            raise EntraRefusal(f"{name}: redirect URI {uri!r} is not a URI") from None
        if parts.scheme != "https" and not (parts.scheme == "http" and host in REDIRECT_URI_LOOPBACK_HOSTS):
            raise EntraRefusal(f"{name}: redirect URI {uri} must use https (http only for loopback addresses)")
        if len(uri) > REDIRECT_URI_MAX_LENGTH:
            raise EntraRefusal(f"{name}: redirect URI {uri} is longer than {REDIRECT_URI_MAX_LENGTH} characters")
        bad = sorted(REDIRECT_URI_FORBIDDEN_CHARACTERS & set(uri))
        if bad:
            raise EntraRefusal(
                f"{name}: redirect URI {uri} contains characters Entra does not support: {' '.join(bad)}"
            )

    def _service_principal(self, name: str, inputs: dict, import_id: str) -> tuple[str, dict]:
        client_id = inputs.get("clientId")
        if client_id not in self.applications.values():
            raise EntraRefusal(f"{name}: no application with client id {client_id!r}")
        self._check_owners(name, inputs.get("owners", []))
        if import_id:
            # pulumi-azuread 6.11 imports a service principal by its bare object id, and uses it as the resource id.
            if self.service_principals.get(import_id) != client_id:
                raise EntraRefusal(f"{name}: no service principal {import_id!r} of the application {client_id}")
            object_id = import_id
        else:
            if client_id in self.service_principals.values():
                raise EntraRefusal(
                    f"{name}: the application {client_id} has a service principal already (import it with adopt)"
                )
            object_id = self._id(f"service-principal/{name}")
            self.service_principals[object_id] = str(client_id)
        return object_id, {"objectId": object_id, "applicationTenantId": self.tenant_id}

    def _password(self, name: str, inputs: dict, import_id: str) -> tuple[str, dict]:
        if import_id:
            raise EntraRefusal(f"{name}: application passwords cannot be imported (pulumi-azuread 6.11)")
        object_id = str(inputs.get("applicationId", "")).removeprefix("/applications/")
        if object_id not in self.applications:
            raise EntraRefusal(f"{name}: application_id must be an application's resource id /applications/<id>")
        end = date.fromisoformat(inputs["endDate"][:10])
        if not self.today < end <= self.today + SECRET_MAX_LIFETIME:
            raise EntraRefusal(
                f"{name}: end date {inputs['endDate']} must lie within {SECRET_MAX_LIFETIME.days} days from now"
            )
        # Entra gives each new password a new key id. Here it follows from the stack, the slot's resource name
        # (portal and slot) and its end date, which changes exactly when the slot is renewed: two offline plans of
        # one day (or of one rotation period) agree, and a rotation between two plans changes the id, as in Entra.
        key_id = self._id(f"password/{self.stack}/{name}/{inputs['endDate']}")
        value = (
            "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(3))
            + "8Q~"
            + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
        )
        self.secret_values[name] = value
        return f"{object_id}/password/{key_id}", {
            "keyId": key_id,
            "value": pulumi.Output.secret(value),
            "startDate": f"{self.today.isoformat()}T00:00:00Z",
        }

    def _delegated_grant(self, name: str, inputs: dict, import_id: str) -> tuple[str, dict]:
        client = self._check_principal(name, inputs.get("servicePrincipalObjectId"))
        sp = self._by_object_id.get(inputs.get("resourceServicePrincipalObjectId", ""))
        if sp is None:
            raise EntraRefusal(f"{name}: unknown resource service principal")
        claims = inputs.get("claimValues", [])
        unknown = [c for c in claims if c not in sp["scopes"]]
        if not claims or unknown or len(set(claims)) != len(claims):
            raise EntraRefusal(f"{name}: {sp['displayName']} publishes no delegated permissions {unknown}")
        existing = self.grants.get((client, sp["objectId"]))
        if import_id:
            if import_id != f"/oauth2PermissionGrants/{existing}":
                raise EntraRefusal(f"{name}: no delegated permission grant to import as {import_id!r}")
            return import_id, {}
        if existing:
            # Graph answers 409 "Permission entry already exists" for a second grant with the same client,
            # resource and consent type (learn.microsoft.com/graph/api/oauth2permissiongrant-post).
            raise EntraRefusal(
                f"{name}: a delegated grant of {sp['displayName']} for all users exists already ({existing}); "
                "import it with adopt.grants"
            )
        grant = self._id(f"grant/{name}")
        self.grants[(client, sp["objectId"])] = grant
        return f"/oauth2PermissionGrants/{grant}", {}

    def _app_role_assignment(self, name: str, inputs: dict, import_id: str) -> tuple[str, dict]:
        client = self._check_principal(name, inputs.get("principalObjectId"))
        sp = self._by_object_id.get(inputs.get("resourceObjectId", ""))
        role = inputs.get("appRoleId")
        if sp is None or role not in sp["roles"].values():
            raise EntraRefusal(f"{name}: the resource publishes no app role {role}")
        existing = self.assignments.get((client, str(role)))
        prefix = f"/servicePrincipals/{sp['objectId']}/appRoleAssignedTo/"
        if import_id:
            if import_id != f"{prefix}{existing}":
                raise EntraRefusal(f"{name}: no app role assignment to import as {import_id!r}")
            return import_id, {"principalType": "ServicePrincipal"}
        if existing:
            # Graph refuses the same app role assigned twice to one principal ("Permission being assigned already
            # exists on the object", learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto).
            raise EntraRefusal(
                f"{name}: the app role {role} is assigned already ({existing}); import it with adopt.roleAssignments"
            )
        assignment = self._id(f"assignment/{name}")
        self.assignments[(client, str(role))] = assignment
        return f"{prefix}{assignment}", {"principalType": "ServicePrincipal"}

    def _check_principal(self, name: str, object_id: object) -> str:
        if object_id not in self.service_principals:
            raise EntraRefusal(f"{name}: no service principal with object id {object_id!r}")
        return str(object_id)


def tenant_for_plan(settings: StackSettings) -> SimulatedTenant:
    """The tenant `plan` evaluates against: empty but for the registrations the configuration adopts, which a
    tenant the configuration fits must hold (their display names and client ids stand in for the real ones). The
    deployment is run by the first of `deployers`, when they are set, as a pipeline of the stack would."""
    catalogue = load_catalogue()
    hand_made = []
    for portal in settings.portals:
        adopt = portal.adopt
        if adopt is None:
            continue
        roles = {p.name: p.id for p in portal.permissions if p.kind is PermissionType.ROLE}
        hand_made.append(
            HandMadeRegistration(
                display_name=f"(made by hand) {portal.name}",
                application_object_id=adopt.application_object_id,
                client_id=str(uuid.uuid5(_ID_NAMESPACE, f"hand-made-client/{adopt.application_object_id}")),
                service_principal_object_id=adopt.service_principal_object_id,
                grants={catalogue.resources[key].app_id: grant for key, grant in adopt.grants.items()},
                role_assignments={roles[name]: assignment for name, assignment in adopt.role_assignments.items()},
            )
        )
    runner = settings.deployers[0] if settings.deployers else None
    return SimulatedTenant(settings.today, deployer_object_id=runner, hand_made=tuple(hand_made))


OPTIONS_UNKNOWN = (
    "plan cannot show which resources are protected or carry aliases: Pulumi's testing monitor changed shape; "
    "everything else in this plan stands"
)


def _options_monitor(tenant: SimulatedTenant, warnings: list[str]) -> Any:
    """A mock monitor that also notes two resource options no public API shows: `protect` and the names of the
    `aliases`. Everything else `plan` reads from public surfaces (the resource objects `build` returns, their URNs,
    `Mocks.new_resource`).

    The one place below Pulumi's public testing API: `MockMonitor` is what `set_mocks(monitor=...)` accepts, but it
    is not documented for subclassing, and `RegisterResource` receives the engine protocol's
    RegisterResourceRequest. If either changes, this degrades to one warning (OPTIONS_UNKNOWN) and None, never to
    a failed plan; tests/test_simulation.py says so loudly.
    """

    def unknown() -> None:
        if OPTIONS_UNKNOWN not in warnings:
            warnings.append(OPTIONS_UNKNOWN)

    try:
        from pulumi.runtime.mocks import MockMonitor

        class OptionsMonitor(MockMonitor):
            def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
                response = super().RegisterResource(request)
                try:
                    aliases = [alias.spec.name for alias in request.aliases if alias.HasField("spec")]
                    tenant.options[(str(request.type), str(request.name))] = (bool(request.protect), aliases)
                except Exception:  # noqa: BLE001 - whatever Pulumi changed, plan goes on without the options
                    unknown()
                return response

        return OptionsMonitor(tenant)
    except Exception:  # noqa: BLE001 - as above
        unknown()
        return None


def _urn_type_and_name(urn: str) -> tuple[str, str]:
    """The type and name in a URN, `urn:pulumi:<stack>::<project>::<parent types $ >type::<name>` (Pulumi's
    documented format, pulumi.com/docs/iac/concepts/resources/names/#urns)."""
    _, _, types, name = urn.split("::", 3)
    return types.rsplit("$", 1)[-1], name


async def _record_urns(evaluation: Evaluation) -> None:
    """URN and parent of every resource, read from the resource objects `build` returned (their public `urn`
    outputs); protect and aliases from the options monitor, when it could see them."""
    registrations = getattr(evaluation.exports, "registrations", None) or {}
    urns: list[tuple[str, str]] = []  # (urn, the parent's urn)
    for registration in registrations.values():
        component_urn = str(await registration.urn.future())
        urns.append((component_urn, ""))
        urns += [(str(await child.urn.future()), component_urn) for child in registration.children]
    tenant = evaluation.tenant  # every resource is registered once its URN has resolved
    by_key = {(r.type, r.name): r for r in tenant.resources}
    for urn, parent in urns:
        key = _urn_type_and_name(urn)
        recorded = by_key.get(key)
        if recorded is None:  # a component, in Pulumi versions whose mocks are not told of components
            recorded = by_key[key] = Recorded(*key, {}, "", {})
            tenant.resources.append(recorded)
        recorded.urn, recorded.parent = urn, parent
    for recorded in tenant.resources:
        protect, aliases = tenant.options.get((recorded.type, recorded.name), (False, []))
        recorded.protect, recorded.aliases = protect, list(aliases)


@dataclass
class Evaluation:
    """The outcome of one evaluation: the tenant (with every recorded resource and call), the resolved exports
    and the warnings the program logged."""

    tenant: SimulatedTenant
    exports: Exports | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # export name -> resolved plain value
    secret_outputs: set[str] = field(default_factory=set)
    unknown_outputs: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.tenant.resources if r.type == typ]


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def evaluate(
    settings: StackSettings, tenant: SimulatedTenant | None = None, program: Callable[[StackSettings], Exports] = build
) -> Evaluation:
    """Run the program function (`components.program.build` unless another is given, as the benchmark's floor)
    for `settings` against a simulated tenant (a new one unless given).

    Each evaluation runs in an empty contextvars context, so Pulumi's runtime state (settings, root stack) starts
    fresh every time. An error the program raises (EntraRefusal, TenantError, ...) is raised as it is.
    """
    evaluation = Evaluation(tenant or SimulatedTenant(settings.today))
    evaluation.tenant.stack = settings.stack
    contextvars.Context().run(_evaluate, evaluation, settings, program)
    return evaluation


@contextlib.contextmanager
def event_loops() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop for one evaluation, and a thread pool whose threads get their loops from us, all closed at
    the end. Pulumi's worker threads otherwise make loops of their own that nobody closes: finalized at the
    interpreter's exit, after their file descriptors had gone, they printed "BaseEventLoop.__del__ ... Invalid
    file descriptor: -1" in a few of several hundred `plan` runs."""
    worker_loops: list[asyncio.AbstractEventLoop] = []

    def give_the_worker_a_loop() -> None:
        worker_loop = asyncio.new_event_loop()
        worker_loop.set_exception_handler(_quiet_about_refusals)
        asyncio.set_event_loop(worker_loop)
        worker_loops.append(worker_loop)

    executor = ThreadPoolExecutor(thread_name_prefix="simulated-tenant", initializer=give_the_worker_a_loop)
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_about_refusals)
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        executor.shutdown(wait=True)
        for worker_loop in worker_loops:
            worker_loop.close()
        loop.close()
        asyncio.set_event_loop(None)


def _quiet_about_refusals(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A refusal fails the evaluation, which raises it once; the futures of the other registrations it failed are
    never awaited, and asyncio would print "Future exception was never retrieved" with a traceback for each."""
    if not isinstance(context.get("exception"), EntraRefusal):
        loop.default_exception_handler(context)


def _evaluate(evaluation: Evaluation, settings: StackSettings, program: Callable[[StackSettings], Exports]) -> None:
    logger = logging.getLogger(f"{PROJECT}.simulation")
    logger.propagate = False
    handler = _Collect(evaluation.warnings)
    logger.addHandler(handler)
    try:
        with event_loops():
            monitor = _options_monitor(evaluation.tenant, evaluation.warnings)
            pulumi.runtime.set_mocks(
                evaluation.tenant,
                project=PROJECT,
                stack=settings.stack,
                preview=False,
                logger=logger,
                **({"monitor": monitor} if monitor is not None else {}),
            )

            async def run() -> None:
                evaluation.exports = program(settings)
                await _record_urns(evaluation)
                for name, value in (
                    (PORTALS, evaluation.exports.portals),
                    (CLIENT_SECRETS, evaluation.exports.client_secrets),
                ):
                    output = pulumi.Output.from_input(value)
                    if not await output.is_known():
                        evaluation.unknown_outputs.add(name)
                        continue
                    evaluation.outputs[name] = await output.future()
                    if await output.is_secret():
                        evaluation.secret_outputs.add(name)

            pulumi.runtime.test(run)()
    finally:
        logger.removeHandler(handler)
