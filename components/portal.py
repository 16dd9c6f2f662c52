"""One Intrexx portal's Entra ID registration: application, service principal, consent and two secret slots."""

from dataclasses import dataclass
from itertools import groupby

import pulumi
import pulumi_azuread as azuread

from .catalogue import load_catalogue
from .clouds import Cloud, TenantEndpoints
from .config import PortalSettings
from .names import ADMIN_CONSENT, EXCHANGE_RBAC, ROLE, SCOPE, Field, PermissionField
from .rotation import SecretSchedule
from .tenant import Tenant

PROJECT = "intrexx-exchange"


@dataclass(frozen=True)
class PortalRegistrationArgs:
    portal: PortalSettings
    environment: str
    cloud: Cloud
    tenant: Tenant
    secrets: SecretSchedule
    protect: bool
    stack: str


class PortalRegistration(pulumi.ComponentResource):
    """Outputs: `summary` (the non-secret `portals` entry) and `client_secret` (the newer slot, a secret)."""

    summary: dict  # plain values and Outputs: the `portals` entry
    client_secret: pulumi.Output

    def __init__(self, name: str, args: PortalRegistrationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:index:PortalRegistration", name, None, opts)
        portal = args.portal
        for warning in portal.warnings:
            pulumi.log.warn(warning, resource=self)

        owners = list(dict.fromkeys((args.tenant.deployer_object_id, *portal.owners)))
        protected = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self.application = azuread.Application(
            f"{name}-app",
            display_name=display_name(portal.name, args.environment),
            sign_in_audience="AzureADMyOrg",
            owners=owners,
            prevent_duplicate_names=True,
            # Intrexx asks for each mailbox user's refresh token with the device code flow, a public client flow.
            fallback_public_client_enabled=portal.delegated,
            notes=f"Managed by Pulumi ({PROJECT}, stack {args.stack}, portal {portal.name}): "
                  "changes made by hand are overwritten by the next `pulumi up`.",
            service_management_reference=f"{PROJECT}/{args.stack}/{portal.name}",
            web=azuread.ApplicationWebArgs(
                homepage_url=portal.base_url,
                redirect_uris=list(portal.redirect_uris),
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    id_token_issuance_enabled=portal.sign_in,
                    access_token_issuance_enabled=False,
                ),
            ),
            required_resource_accesses=self._required_resource_accesses(args),
            opts=protected,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=self.application.client_id,
            owners=owners,
            app_role_assignment_required=False,
            opts=protected,
        )
        self._consent(name, args)
        self.passwords = [
            azuread.ApplicationPassword(
                f"{name}-secret-{slot.index}",
                application_id=self.application.id,
                display_name=f"{PROJECT} slot {slot.index} from {slot.created_in.isoformat()}",
                end_date=slot.end_date,
                rotate_when_changed={"period": slot.rotation_key},
                opts=pulumi.ResourceOptions(parent=self),
            )
            for slot in args.secrets.slots
        ]
        newer = self.passwords[args.secrets.newer.index]
        # Under Pulumi's engine `value` is secret already; marking it here keeps that true everywhere.
        self.client_secret = pulumi.Output.secret(newer.value)
        static = static_summary(args)
        self.summary = {**static, Field.CLIENT_ID: self.application.client_id,
                        Field.APPLICATION_OBJECT_ID: self.application.object_id,
                        Field.SERVICE_PRINCIPAL_OBJECT_ID: self.service_principal.object_id,
                        Field.SECRET_KEY_ID: newer.key_id}
        # The summary is a stack export already; registering it again would only cost time (bench/run.py).
        self.register_outputs({"clientId": self.application.client_id,
                               "servicePrincipalObjectId": self.service_principal.object_id})

    @staticmethod
    def _required_resource_accesses(args: PortalRegistrationArgs) -> list:
        catalogue = load_catalogue()
        consented = [p for p in args.portal.permissions if not args.portal.exchange_rbac(p)]
        accesses = []
        for key, permissions in groupby(sorted(consented, key=lambda p: p.resource), key=lambda p: p.resource):
            resource_api = args.tenant.resource_apis[key]
            accesses.append(azuread.ApplicationRequiredResourceAccessArgs(
                resource_app_id=catalogue.resources[key].app_id,
                resource_accesses=[
                    azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                        id=resource_api.permission_id(p), type=p.kind)
                    for p in permissions
                ],
            ))
        return accesses

    def _consent(self, name: str, args: PortalRegistrationArgs) -> None:
        """Admin consent: one delegated grant per resource API for all users, one assignment per app role."""
        portal = args.portal
        opts = pulumi.ResourceOptions(parent=self)
        scopes = sorted((p for p in portal.permissions if p.kind == SCOPE), key=lambda p: p.resource)
        for key, permissions in groupby(scopes, key=lambda p: p.resource):
            azuread.ServicePrincipalDelegatedPermissionGrant(
                f"{name}-grant-{key}",
                service_principal_object_id=self.service_principal.object_id,
                resource_service_principal_object_id=args.tenant.resource_apis[key].object_id,
                claim_values=[p.name for p in permissions],
                opts=opts,
            )
        for permission in portal.permissions:
            if permission.kind != ROLE or portal.exchange_rbac(permission):
                continue
            resource_api = args.tenant.resource_apis[permission.resource]
            azuread.AppRoleAssignment(
                f"{name}-role-{permission.resource}-{permission.name}",
                app_role_id=resource_api.permission_id(permission),
                principal_object_id=self.service_principal.object_id,
                resource_object_id=resource_api.object_id,
                opts=opts,
            )


def display_name(portal: str, environment: str) -> str:
    return f"Intrexx {portal} ({environment})"


def static_summary(args: PortalRegistrationArgs) -> dict:
    """The part of the `portals` output known before any resource exists."""
    portal, cloud, tenant = args.portal, args.cloud, args.tenant
    catalogue = load_catalogue()
    endpoints = TenantEndpoints(cloud.login, tenant.tenant_id)
    api_resource = catalogue.resources[catalogue.apis[portal.api]]
    resource_url = getattr(cloud, api_resource.endpoint)
    if portal.delegated:
        scopes = [p.name if p.name in catalogue.openid_scopes else f"{resource_url}/{p.name}"
                  for p in portal.permissions
                  if p.kind == SCOPE and (p.resource == api_resource.key or p.name in catalogue.openid_scopes)]
    else:
        scopes = [f"{resource_url}/.default"]
    permissions = []
    for p in portal.permissions:
        entry = {
            PermissionField.RESOURCE: p.resource,
            PermissionField.RESOURCE_APP_ID: catalogue.resources[p.resource].app_id,
            PermissionField.NAME: p.name,
            PermissionField.TYPE: p.kind,
            PermissionField.ID: tenant.resource_apis[p.resource].permission_id(p),
            PermissionField.GRANTED_BY: EXCHANGE_RBAC if portal.exchange_rbac(p) else ADMIN_CONSENT,
        }
        if portal.exchange_rbac(p):
            entry[PermissionField.EXCHANGE_ROLE] = p.exchange_role
        permissions.append(entry)
    summary = {
        Field.PORTAL: portal.name,
        Field.TENANT_ID: tenant.tenant_id,
        Field.DISPLAY_NAME: display_name(portal.name, args.environment),
        Field.ENVIRONMENT: args.environment,
        Field.CLOUD: cloud.name,
        Field.API: portal.api,
        Field.ACCESS: portal.access,
        Field.BASE_URL: portal.base_url,
        Field.SIGN_IN: portal.sign_in,
        Field.PUBLIC_CLIENT: portal.delegated,
        Field.AUTHORITY_HOST: cloud.login,
        Field.AUTHORITY: endpoints.authority,
        Field.TOKEN_ENDPOINT: endpoints.token,
        Field.AUTHORIZE_ENDPOINT: endpoints.authorize,
        Field.DEVICE_CODE_ENDPOINT: endpoints.device_code,
        Field.JWKS_URI: endpoints.jwks,
        Field.ISSUER: endpoints.issuer,
        Field.USER_INFO_ENDPOINT: f"{cloud.graph}/oidc/userinfo",
        Field.RESOURCE: resource_url,
        Field.GRAPH_ENDPOINT: cloud.graph,
        Field.SCOPES: scopes,
        Field.PERMISSIONS: permissions,
        Field.REDIRECT_URIS: list(portal.redirect_uris),
        Field.SECRET_EXPIRES_AT: args.secrets.newer.end_date,
        Field.SECRET_ROTATES_AT: f"{args.secrets.rotates_at.isoformat()}T00:00:00Z",
        Field.SECRET_ROTATION_DAYS: args.secrets.rotation_days,
    }
    if portal.sign_in:
        summary[Field.SIGN_IN_REDIRECT_URI] = portal.sign_in_redirect_uri
    if portal.api == "ews":
        summary[Field.EWS_URL] = cloud.ews_url
    if portal.mailbox_scope:
        summary[Field.MAILBOX_SCOPE] = portal.mailbox_scope.as_output()
    return summary
