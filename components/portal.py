"""One Intrexx portal's Entra ID registration: application, service principal, consent and two secret slots."""

from dataclasses import dataclass, replace
from itertools import groupby

import pulumi
import pulumi_azuread as azuread

from .catalogue import Permission, load_catalogue
from .clouds import Cloud, TenantEndpoints
from .config import PortalSettings
from .contract import OUTPUT_SCHEMA_VERSION, Api, GrantedBy, GrantedPermission, PermissionType, PortalOutput
from .rotation import SecretSchedule
from .tenant import Tenant

PROJECT = "intrexx-exchange"
COMPONENT_TYPE = f"{PROJECT}:index:PortalRegistration"


@dataclass(frozen=True)
class PortalRegistrationArgs:
    portal: PortalSettings
    environment: str
    cloud: Cloud
    tenant: Tenant
    secrets: SecretSchedule
    protect: bool
    stack: str
    deployers: tuple[str, ...] | None = None  # None: the identity running the program owns what it creates


class PortalRegistration(pulumi.ComponentResource):
    """The registration of one portal. `summary` is its entry of the `portals` output (`PortalOutput.to_output()`),
    `client_secret` the newer secret slot's value (a Pulumi secret)."""

    application: azuread.Application
    service_principal: azuread.ServicePrincipal
    passwords: list[azuread.ApplicationPassword]
    client_id: pulumi.Output[str]
    summary: pulumi.Output[dict]
    client_secret: pulumi.Output[str]

    def __init__(self, name: str, args: PortalRegistrationArgs, opts: pulumi.ResourceOptions | None = None):
        portal = args.portal
        # A renamed portal keeps its registration: the old name is an alias of the component and of every child
        # (children's URNs carry the parent's type, not its name), so Pulumi moves them instead of replacing them.
        self._portal_name, self._previous_name = name, portal.renamed_from
        aliases = [] if portal.renamed_from is None else [pulumi.Alias(name=portal.renamed_from)]
        super().__init__(
            COMPONENT_TYPE, name, None, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases))
        )

        owners = registration_owners(args)
        adopt = portal.adopt
        self.application = azuread.Application(
            f"{name}-app",
            display_name=display_name(portal.name, args.environment),
            sign_in_audience="AzureADMyOrg",
            owners=owners,
            prevent_duplicate_names=True,
            # Public client flows: the Exchange connector's device code sign-in needs them (config.py says when).
            fallback_public_client_enabled=portal.public_client_flows,
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
            # Import ids as pulumi-azuread 6.11 documents them: /applications/<object id>, and the bare object id
            # of a service principal. An adopted object is imported and then brought to the desired state
            # (pulumi/pulumi#19339: "the import will succeed, and the resource will then be modified").
            opts=self._options(
                f"{name}-app", args.protect, f"/applications/{adopt.application_object_id}" if adopt else None
            ),
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=self.application.client_id,
            owners=owners,
            app_role_assignment_required=False,
            opts=self._options(f"{name}-sp", args.protect, adopt.service_principal_object_id if adopt else None),
        )
        self.consent = self._consent(name, args)
        self.passwords = [
            azuread.ApplicationPassword(
                f"{name}-secret-{slot.index}",
                application_id=self.application.id,
                display_name=f"{PROJECT} slot {slot.index} from {slot.created_in.isoformat()}",
                end_date=slot.end_date,
                rotate_when_changed={"period": slot.rotation_key},
                opts=self._options(f"{name}-secret-{slot.index}"),
            )
            for slot in args.secrets.slots
        ]
        newer = self.passwords[args.secrets.newer.index]
        older = self.passwords[1 - args.secrets.newer.index]
        # Under Pulumi's engine `value` is secret already; marking it here keeps that true everywhere.
        self.client_secret = pulumi.Output.secret(newer.value)
        self.client_id = self.application.client_id
        known_before = static_output(args)
        self.summary = pulumi.Output.all(
            client_id=self.application.client_id,
            application_object_id=self.application.object_id,
            service_principal_object_id=self.service_principal.object_id,
            secret_key_id=newer.key_id,
            previous_secret_key_id=older.key_id,
        ).apply(lambda ids: replace(known_before, **ids).to_output())
        self.register_outputs(
            {"clientId": self.client_id, "servicePrincipalObjectId": self.service_principal.object_id}
        )

    @staticmethod
    def _required_resource_accesses(args: PortalRegistrationArgs) -> list:
        catalogue = load_catalogue()
        consented = [p for p in args.portal.permissions if not args.portal.exchange_rbac(p)]
        accesses = []
        for key, permissions in groupby(sorted(consented, key=lambda p: p.resource), key=lambda p: p.resource):
            resource_api = args.tenant.resource_apis[key]
            accesses.append(
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=catalogue.resources[key].app_id,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=resource_api.permission_id(p), type=p.kind.value
                        )
                        for p in permissions
                    ],
                )
            )
        return accesses

    def _options(self, child: str, protect: bool = False, import_id: str | None = None) -> pulumi.ResourceOptions:
        """A child's options: parented to the component; for a renamed portal, the child's old name as an alias."""
        aliases = []
        if self._previous_name is not None:
            aliases.append(pulumi.Alias(name=self._previous_name + child.removeprefix(self._portal_name)))
        return pulumi.ResourceOptions(parent=self, protect=protect, import_=import_id or None, aliases=aliases)

    @property
    def children(self) -> list[pulumi.CustomResource]:
        """Every resource of the registration, in the order they are declared."""
        return [self.application, self.service_principal, *self.consent, *self.passwords]

    def _consent(self, name: str, args: PortalRegistrationArgs) -> list[pulumi.CustomResource]:
        """Admin consent: one delegated grant per resource API for all users, one assignment per app role."""
        consent: list[pulumi.CustomResource] = []
        portal = args.portal
        adopt = portal.adopt
        scopes = sorted((p for p in portal.permissions if p.kind is PermissionType.SCOPE), key=lambda p: p.resource)
        for key, permissions in groupby(scopes, key=lambda p: p.resource):
            # Import ids (pulumi-azuread 6.11): /oauth2PermissionGrants/<id>, and
            # /servicePrincipals/<resource service principal>/appRoleAssignedTo/<assignment id> below. Entra refuses
            # a second grant or assignment of the same kind, so an adopted registration's existing ones are imported.
            grant = adopt.grants.get(key) if adopt else None
            consent.append(
                azuread.ServicePrincipalDelegatedPermissionGrant(
                    f"{name}-grant-{key}",
                    service_principal_object_id=self.service_principal.object_id,
                    resource_service_principal_object_id=args.tenant.resource_apis[key].object_id,
                    claim_values=[p.name for p in permissions],
                    opts=self._options(f"{name}-grant-{key}", import_id=grant and f"/oauth2PermissionGrants/{grant}"),
                )
            )
        for permission in portal.permissions:
            if permission.kind is not PermissionType.ROLE or portal.exchange_rbac(permission):
                continue
            resource_api = args.tenant.resource_apis[permission.resource]
            child = f"{name}-role-{permission.resource}-{permission.name}"
            assignment = adopt.role_assignments.get(permission.name) if adopt else None
            consent.append(
                azuread.AppRoleAssignment(
                    child,
                    app_role_id=resource_api.permission_id(permission),
                    principal_object_id=self.service_principal.object_id,
                    resource_object_id=resource_api.object_id,
                    opts=self._options(
                        child,
                        import_id=assignment
                        and f"/servicePrincipals/{resource_api.object_id}/appRoleAssignedTo/{assignment}",
                    ),
                )
            )
        return consent


def registration_owners(args: PortalRegistrationArgs) -> list[str]:
    """Who owns the application and service principal. With `deployers`, exactly they and the portal's owners,
    whoever runs the program; without it, the running identity and the portal's owners, as the azuread provider
    does by default (it adds the caller first and removes it again when it is not among `owners`:
    terraform-provider-azuread service_principal_resource.go). The provider removes every owner not listed, so
    owners that depend on who runs the program churn between a person and a pipeline."""
    first = args.deployers if args.deployers is not None else (args.tenant.deployer_object_id,)
    return list(dict.fromkeys((*first, *args.portal.owners)))


def display_name(portal: str, environment: str) -> str:
    return f"Intrexx {portal} ({environment})"


def static_output(args: PortalRegistrationArgs) -> PortalOutput:
    """The portal's output entry as far as it is known before any resource exists; the ids Entra assigns are
    left empty and filled in once the resources are created."""
    portal, cloud, tenant = args.portal, args.cloud, args.tenant
    catalogue = load_catalogue()
    endpoints = TenantEndpoints(cloud.login, tenant.tenant_id)
    api_resource = catalogue.resource_of(portal.connector)
    resource_url = getattr(cloud, api_resource.endpoint)
    if portal.delegated:
        scopes = tuple(
            p.name if p.name in catalogue.openid_scopes else f"{resource_url}/{p.name}"
            for p in portal.permissions
            if p.kind is PermissionType.SCOPE and (p.resource == api_resource.key or p.name in catalogue.openid_scopes)
        )
    else:
        scopes = (f"{resource_url}/.default",)

    def granted(p: Permission) -> GrantedPermission:
        rbac = portal.exchange_rbac(p)
        return GrantedPermission(
            resource=p.resource,
            resource_app_id=catalogue.resources[p.resource].app_id,
            name=p.name,
            type=p.kind,
            id=tenant.resource_apis[p.resource].permission_id(p),
            granted_by=GrantedBy.EXCHANGE_RBAC if rbac else GrantedBy.ADMIN_CONSENT,
            exchange_role=p.exchange_role if rbac else None,
        )

    return PortalOutput(
        portal=portal.name,
        schema_version=OUTPUT_SCHEMA_VERSION,
        tenant_id=tenant.tenant_id,
        client_id="",
        application_object_id="",
        service_principal_object_id="",
        display_name=display_name(portal.name, args.environment),
        environment=args.environment,
        cloud=cloud.name,
        connector=portal.connector,
        api=portal.api,
        access=portal.access,
        base_url=portal.base_url,
        sign_in=portal.sign_in,
        public_client=portal.public_client_flows,
        authority_host=cloud.login,
        authority=endpoints.authority,
        token_endpoint=endpoints.token,
        authorize_endpoint=endpoints.authorize,
        device_code_endpoint=endpoints.device_code,
        jwks_uri=endpoints.jwks,
        issuer=endpoints.issuer,
        user_info_endpoint=cloud.user_info_endpoint,
        resource=resource_url,
        graph_endpoint=cloud.graph,
        scopes=scopes,
        permissions=tuple(granted(p) for p in portal.permissions),
        redirect_uris=portal.redirect_uris,
        secret_key_id="",
        secret_expires_at=args.secrets.newer.expires,
        previous_secret_key_id="",
        previous_secret_expires_at=args.secrets.older.expires,
        hand_made_secret_key_ids=portal.adopt.hand_made_secret_key_ids if portal.adopt else None,
        secret_rotates_at=args.secrets.rotates_at,
        secret_rotation_days=args.secrets.rotation_days,
        sign_in_redirect_uri=portal.sign_in_redirect_uri,
        ews_url=cloud.ews_url if portal.api is Api.EWS else None,
        mailbox_scope=portal.mailbox_scope,
        refresh_tokens_requested_on=portal.refresh_tokens_requested_on,
    )
