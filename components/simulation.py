"""A simulated Entra ID tenant, and the real program evaluated against it under Pulumi's mocks.

The tenant answers the provider's invokes the way Entra does (the real permission ids of Microsoft Graph and
Exchange Online, from the catalogue), computes what Entra computes (object ids, client ids, secret values,
returned as Pulumi secrets), refuses what Entra refuses, and records every resource and call. The tests use it
to check the program, and `python -m intrexx_connector plan` to show what `pulumi up` would create.
"""

import asyncio
import contextvars
import json
import logging
import os
import runpy
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from .catalogue import load_catalogue
from .config import LOOPBACK_HOSTS, MAX_REDIRECT_URI_LENGTH, NAMESPACE, is_guid
from .names import ROLE, SCOPE
from .rotation import MAX_SECRET_DAYS
from .tenant import TenantError
from .today import TODAY_VARIABLE

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "intrexx-exchange"

APPLICATION = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
DELEGATED_GRANT = "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
PORTAL_COMPONENT = f"{PROJECT}:index:PortalRegistration"
GET_CLIENT_CONFIG = "azuread:index/getClientConfig:getClientConfig"
GET_SERVICE_PRINCIPAL = "azuread:index/getServicePrincipal:getServicePrincipal"

_ID_NAMESPACE = uuid.UUID("6f1c2a8e-9d2b-4c51-8a57-0e7d3b5e2c10")
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


class EntraRefusal(Exception):
    """What Entra would answer with an error; fails the simulated deployment like a failed Graph call."""


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict
    id: str
    state: dict
    urn: str = ""
    parent: str = ""
    protect: bool = False


class SimulatedTenant:
    """A pulumi.runtime.Mocks implementation that behaves like an Entra ID tenant."""

    def __init__(self, today: date, tenant_id: str | None = None, deployer_object_id: str | None = None,
                 existing_display_names: tuple = ()):
        self.today = today
        self.tenant_id = tenant_id or self._id("tenant")
        self.deployer_object_id = deployer_object_id or self._id("deployer")
        self.resources: list[Recorded] = []
        self.calls: list[dict] = []
        self.display_names = set(existing_display_names)
        self.applications: dict = {}  # object id -> client id
        self.secret_values: dict = {}  # ApplicationPassword resource name -> the value Entra generated
        self.service_principals: set = set()
        catalogue = load_catalogue()
        self.resource_service_principals = {
            app.app_id: {
                "objectId": self._id(f"resource-sp/{app.app_id}"),
                "clientId": app.app_id,
                "displayName": app.display_name,
                "scopes": {p.name: p.id for p in app.permissions.values() if p.kind == SCOPE},
                "roles": {p.name: p.id for p in app.permissions.values() if p.kind == ROLE},
            }
            for app in catalogue.resources.values()
        }
        self._by_object_id = {sp["objectId"]: sp for sp in self.resource_service_principals.values()}

    def _id(self, name: str) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, name))

    # pulumi.runtime.Mocks interface ------------------------------------------------------------------------

    def call(self, args):
        self.calls.append({"token": args.token, "args": dict(args.args)})
        if args.token == GET_CLIENT_CONFIG:
            return {"clientId": self._id("deployer-app"), "objectId": self.deployer_object_id,
                    "tenantId": self.tenant_id}
        if args.token == GET_SERVICE_PRINCIPAL:
            sp = self.resource_service_principals.get(args.args.get("clientId"))
            if sp is None:
                raise EntraRefusal(f"Request_ResourceNotFound: no service principal with client id "
                                   f"{args.args.get('clientId')!r} in tenant {self.tenant_id}")
            return {
                "id": sp["objectId"], "objectId": sp["objectId"], "clientId": sp["clientId"],
                "displayName": sp["displayName"], "appRoleIds": sp["roles"],
                "oauth2PermissionScopeIds": sp["scopes"],
                "appRoles": [{"id": i, "value": n, "displayName": n, "enabled": True,
                              "allowedMemberTypes": ["Application"], "description": n}
                             for n, i in sp["roles"].items()],
                "oauth2PermissionScopes": [{"id": i, "value": n, "enabled": True, "type": "User",
                                            "adminConsentDescription": n, "adminConsentDisplayName": n,
                                            "userConsentDescription": n, "userConsentDisplayName": n}
                                           for n, i in sp["scopes"].items()],
            }
        raise EntraRefusal(f"the simulated tenant does not answer {args.token}")

    def new_resource(self, args):
        inputs = _unwrap(args.inputs)
        handler = {
            APPLICATION: self._application,
            SERVICE_PRINCIPAL: self._service_principal,
            APPLICATION_PASSWORD: self._password,
            DELEGATED_GRANT: self._delegated_grant,
            APP_ROLE_ASSIGNMENT: self._app_role_assignment,
        }.get(args.typ)
        if handler is None:
            resource_id, state = f"{args.name}-id", {}
        else:
            resource_id, state = handler(args.name, inputs)
        self.resources.append(Recorded(args.typ, args.name, inputs, resource_id, state))
        return resource_id, {**inputs, **state}

    def register_transform(self, transform):
        pass

    def register_invoke_transform(self, transform):
        pass

    # resources -----------------------------------------------------------------------------------------------

    def _application(self, name: str, inputs: dict):
        display_name = inputs.get("displayName", "")
        if not display_name or len(display_name) > 256:
            raise EntraRefusal(f"{name}: displayName must be 1..256 characters")
        if inputs.get("preventDuplicateNames") and display_name in self.display_names:
            raise EntraRefusal(f"{name}: an application named {display_name!r} already exists "
                               "(prevent_duplicate_names)")
        for owner in inputs.get("owners", []):
            if not is_guid(owner):
                raise EntraRefusal(f"{name}: owner {owner!r} is not an object id")
        uris = (inputs.get("web") or {}).get("redirectUris", [])
        if len(set(uris)) != len(uris):
            raise EntraRefusal(f"{name}: redirect URIs must be unique")
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
        self.display_names.add(display_name)
        object_id, client_id = self._id(f"application/{name}"), self._id(f"client/{name}")
        self.applications[object_id] = client_id
        return f"/applications/{object_id}", {"objectId": object_id, "clientId": client_id,
                                              "publisherDomain": "contoso.onmicrosoft.com"}

    @staticmethod
    def _check_redirect_uri(name: str, uri: str) -> None:
        parts = urlsplit(uri)
        loopback = parts.hostname in LOOPBACK_HOSTS
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise EntraRefusal(f"{name}: redirect URI {uri} must use https (http only for localhost)")
        if "*" in uri or parts.query or parts.fragment or len(uri) > MAX_REDIRECT_URI_LENGTH:
            raise EntraRefusal(f"{name}: redirect URI {uri} is not allowed (wildcard, query, fragment or too long)")

    def _service_principal(self, name: str, inputs: dict):
        if inputs.get("clientId") not in self.applications.values():
            raise EntraRefusal(f"{name}: no application with client id {inputs.get('clientId')!r}")
        object_id = self._id(f"service-principal/{name}")
        self.service_principals.add(object_id)
        return f"/servicePrincipals/{object_id}", {"objectId": object_id, "applicationTenantId": self.tenant_id}

    def _password(self, name: str, inputs: dict):
        object_id = str(inputs.get("applicationId", "")).removeprefix("/applications/")
        if object_id not in self.applications:
            raise EntraRefusal(f"{name}: application_id must be an application's resource id /applications/<id>")
        end = date.fromisoformat(inputs["endDate"][:10])
        if not self.today < end <= self.today + timedelta(days=MAX_SECRET_DAYS):
            raise EntraRefusal(f"{name}: end date {inputs['endDate']} must lie within {MAX_SECRET_DAYS} days "
                               "from now")
        key_id = str(uuid.uuid4())
        value = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(3)) + "8Q~" + \
            "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
        self.secret_values[name] = value
        import pulumi

        return f"{object_id}/password/{key_id}", {
            "keyId": key_id,
            "value": pulumi.Output.secret(value),
            "startDate": f"{self.today.isoformat()}T00:00:00Z",
        }

    def _delegated_grant(self, name: str, inputs: dict):
        self._check_principal(name, inputs.get("servicePrincipalObjectId"))
        sp = self._by_object_id.get(inputs.get("resourceServicePrincipalObjectId"))
        if sp is None:
            raise EntraRefusal(f"{name}: unknown resource service principal")
        claims = inputs.get("claimValues", [])
        unknown = [c for c in claims if c not in sp["scopes"]]
        if not claims or unknown or len(set(claims)) != len(claims):
            raise EntraRefusal(f"{name}: {sp['displayName']} publishes no delegated permissions {unknown}")
        return self._id(f"grant/{name}"), {}

    def _app_role_assignment(self, name: str, inputs: dict):
        self._check_principal(name, inputs.get("principalObjectId"))
        sp = self._by_object_id.get(inputs.get("resourceObjectId"))
        if sp is None or inputs.get("appRoleId") not in sp["roles"].values():
            raise EntraRefusal(f"{name}: the resource publishes no app role {inputs.get('appRoleId')}")
        return self._id(f"assignment/{name}"), {"principalType": "ServicePrincipal"}

    def _check_principal(self, name: str, object_id) -> None:
        if object_id not in self.service_principals:
            raise EntraRefusal(f"{name}: no service principal with object id {object_id!r}")


def _recording_monitor(tenant: SimulatedTenant):
    """The mock monitor, also noting what `new_resource` is not told: URN, parent and protect."""
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                for recorded in reversed(tenant.resources):
                    if recorded.name == request.name and recorded.type == request.type:
                        recorded.urn, recorded.parent, recorded.protect = response.urn, request.parent, request.protect
                        break
            return response

    return RecordingMonitor(tenant)


def _unwrap(value):
    """Inputs arrive deserialized; secret inputs keep Pulumi's secret wrapper, which Entra would not see."""
    from pulumi.runtime import rpc

    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


@dataclass
class Evaluation:
    tenant: SimulatedTenant
    outputs: dict = field(default_factory=dict)  # export name -> resolved value
    secret_outputs: set = field(default_factory=set)
    unknown_outputs: set = field(default_factory=set)
    warnings: list = field(default_factory=list)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.tenant.resources if r.type == typ]


class _Collect(logging.Handler):
    def __init__(self, sink: list):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record):
        self.sink.append(record.getMessage())


def _ignore_reported_errors(loop, context) -> None:
    if not isinstance(context.get("exception"), (EntraRefusal, TenantError)):
        loop.default_exception_handler(context)


async def _resolve(value):
    """(plain value, known, secret) of an export, awaiting the Outputs nested in it.

    Output.from_input would wrap every key and value of every portal in an Output of its own: at 400 portals
    that took 2.6 s of a 9 s evaluation (bench/run.py); walking takes 0.1 s.
    """
    import pulumi

    if isinstance(value, pulumi.Output):
        known, secret = await value.is_known(), await value.is_secret()
        inner, inner_known, inner_secret = await _resolve(await value.future())
        return inner, known and inner_known, secret or inner_secret
    if isinstance(value, (list, tuple, dict)):
        keys = list(value) if isinstance(value, dict) else range(len(value))
        parts = [await _resolve(value[key]) for key in keys]
        plain = ({key: part[0] for key, part in zip(keys, parts)} if isinstance(value, dict)
                 else [part[0] for part in parts])
        return plain, all(part[1] for part in parts), any(part[2] for part in parts)
    return value, True, False


def stack_file_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict:
    """The `intrexx-exchange:` and `azuread:` keys of Pulumi.<stack>.yaml, as the engine hands them to the program.
    Encrypted (`secure:`) values cannot be read offline and are left out."""
    import yaml

    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path.name} in {project_dir}")
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    values = document.get("config") or {}
    return {
        key: (json.dumps(value) if isinstance(value, (list, dict)) else
              str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in values.items()
        if key.startswith((f"{NAMESPACE}:", "azuread:")) and value is not None
        and not (isinstance(value, dict) and "secure" in value)
    }


def evaluate(config: dict, stack: str, today: date, tenant: SimulatedTenant | None = None,
             project_dir: Path = PROJECT_DIR) -> Evaluation:
    """Run `__main__.py` with `config` ({"intrexx-exchange:portals": "<json>", ...}) against a simulated tenant.

    Each evaluation runs in an empty contextvars context, so Pulumi's runtime state (settings, root stack,
    config) starts fresh every time. A program error (ConfigError, EntraRefusal, ...) is raised as it is.
    """
    evaluation = Evaluation(tenant or SimulatedTenant(today))
    contextvars.Context().run(_evaluate, evaluation, config, stack, today, project_dir)
    return evaluation


def _evaluate(evaluation: Evaluation, config: dict, stack: str, today: date, project_dir: Path) -> None:
    import pulumi
    from pulumi.runtime.stack import wait_for_rpcs
    from pulumi.runtime.sync_await import _sync_await

    logger = logging.getLogger(f"{PROJECT}.simulation")
    logger.propagate = False
    handler = _Collect(evaluation.warnings)
    logger.addHandler(handler)
    previous_today = os.environ.get(TODAY_VARIABLE)
    os.environ[TODAY_VARIABLE] = today.isoformat()
    try:
        pulumi.runtime.set_mocks(evaluation.tenant, project=PROJECT, stack=stack, preview=False, logger=logger,
                                 monitor=_recording_monitor(evaluation.tenant))
        pulumi.runtime.set_all_config(dict(config))
        error = None
        try:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        except Exception as exc:  # noqa: BLE001 re-raised once the runtime is quiet
            error = exc
        # Drain every task, even after a failure: left on the shared event loop, a failed registration would
        # surface in the next evaluation. The first error is the one to report; asyncio would print it again for
        # every future it reaches when that future is garbage-collected.
        asyncio.get_event_loop().set_exception_handler(_ignore_reported_errors)
        for _ in range(10_000):
            try:
                _sync_await(wait_for_rpcs())
                break
            except Exception as exc:  # noqa: BLE001
                error = error or exc
        if error is not None:
            raise error
        for name, value in pulumi.runtime.get_root_resource().outputs.items():
            plain, known, secret = _sync_await(_resolve(value))
            if not known:
                evaluation.unknown_outputs.add(name)
                continue
            evaluation.outputs[name] = plain
            if secret:
                evaluation.secret_outputs.add(name)
    finally:
        logger.removeHandler(handler)
        if previous_today is None:
            os.environ.pop(TODAY_VARIABLE, None)
        else:
            os.environ[TODAY_VARIABLE] = previous_today
