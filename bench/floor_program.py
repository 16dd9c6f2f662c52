"""The benchmark's floor: the fewest pulumi_azuread calls that give each portal the product's resources.

One Application, one ServicePrincipal, one delegated grant each to Exchange Online and Microsoft Graph and two
ApplicationPasswords per portal, with the same names and the same inputs as the product sends for a default portal
(the Exchange connector), so that the simulated tenant does the same work for both. It exports the same `portals`
document the product does (the post-deploy step needs every field), written out by hand as a plain dict. No
component resources, no catalogue, no typed output contract, no validation: what the product costs on top of this
is the price of its structure. It is evaluated by the product's own harness,
`intrexx_connector.simulation.evaluate(settings, program=floor_build)`.

Only valid for portals with the default profile ({"name": ..., "baseUrl": ...}); bench/run.py checks that the
floor's recorded inputs and its outputs equal the product's before it trusts a timing.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import pulumi
import pulumi_azuread as azuread

from components.config import StackSettings

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EXCHANGE_CLAIMS = ["EWS.AccessAsUser.All"]
GRAPH_CLAIMS = ["offline_access", "openid", "profile"]
REDIRECT_PATHS = ["oauth2/token/msexchange", "service/oauth2/token/msexchange"]


@dataclass(frozen=True)
class FloorExports:
    portals: dict
    client_secrets: pulumi.Output


def floor_build(settings: StackSettings) -> FloorExports:
    stack, today, rotation_days = settings.stack, settings.today, settings.secret_rotation_days
    client = azuread.get_client_config()
    exchange = azuread.get_service_principal(client_id=EXCHANGE_APP_ID)
    graph = azuread.get_service_principal(client_id=GRAPH_APP_ID)

    # Two staggered secret slots, as the product's rotation computes them (components/rotation.py).
    epoch = date(2024, 1, 1)
    period = (today - epoch).days // rotation_days
    slots = []
    for index in (0, 1):
        created = epoch + timedelta(days=(period if (period - index) % 2 == 0 else period - 1) * rotation_days)
        slots.append((index, created, created + timedelta(days=2 * rotation_days)))
    newer = period % 2

    grants = ((EXCHANGE_APP_ID, "exchange", exchange, EXCHANGE_CLAIMS), (GRAPH_APP_ID, "graph", graph, GRAPH_CLAIMS))
    required_access = [
        azuread.ApplicationRequiredResourceAccessArgs(
            resource_app_id=app_id,
            resource_accesses=[
                azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                    id=principal.oauth2_permission_scope_ids[name], type="Scope"
                )
                for name in claims
            ],
        )
        for app_id, _, principal, claims in grants
    ]
    owners = [client.object_id]
    exported, secrets = {}, {}
    for portal in settings.portals:
        name, base_url = portal.name, portal.base_url
        app = azuread.Application(
            f"{name}-app",
            display_name=f"Intrexx {name} ({settings.environment})",
            sign_in_audience="AzureADMyOrg",
            owners=owners,
            prevent_duplicate_names=True,
            fallback_public_client_enabled=True,
            notes=f"Managed by Pulumi (intrexx-exchange, stack {stack}, portal {name}): "
            "changes made by hand are overwritten by the next `pulumi up`.",
            service_management_reference=f"intrexx-exchange/{stack}/{name}",
            web=azuread.ApplicationWebArgs(
                homepage_url=base_url,
                redirect_uris=[f"{base_url}/{path}" for path in REDIRECT_PATHS],
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    id_token_issuance_enabled=False, access_token_issuance_enabled=False
                ),
            ),
            required_resource_accesses=required_access,
        )
        sp = azuread.ServicePrincipal(
            f"{name}-sp", client_id=app.client_id, owners=owners, app_role_assignment_required=False
        )
        for _, key, principal, claims in grants:
            azuread.ServicePrincipalDelegatedPermissionGrant(
                f"{name}-grant-{key}",
                service_principal_object_id=sp.object_id,
                resource_service_principal_object_id=principal.object_id,
                claim_values=claims,
            )
        passwords = [
            azuread.ApplicationPassword(
                f"{name}-secret-{index}",
                application_id=app.id,
                display_name=f"intrexx-exchange slot {index} from {created.isoformat()}",
                end_date=f"{expires.isoformat()}T00:00:00Z",
                rotate_when_changed={"period": f"slot{index}-{created.isoformat()}"},
            )
            for index, created, expires in slots
        ]
        exported[name] = pulumi.Output.all(
            app.client_id, app.object_id, sp.object_id, passwords[newer].key_id, passwords[1 - newer].key_id
        ).apply(
            lambda ids, name=name, base_url=base_url: _portal_output(
                settings, client.tenant_id, name, base_url, ids, slots, newer, exchange, graph
            )
        )
        secrets[name] = passwords[newer].value
    return FloorExports(exported, pulumi.Output.secret(secrets))


def _portal_output(settings, tenant_id, name, base_url, ids, slots, newer, exchange, graph) -> dict:
    """The `portals` entry the post-deploy step needs, written out as a plain dict for a default portal: the same
    document the product's typed contract produces (bench/child.py `equivalence` compares them)."""
    client_id, app_object_id, sp_object_id, key_id, previous_key_id = ids
    login, authority = "https://login.microsoftonline.com", f"https://login.microsoftonline.com/{tenant_id}"
    newer_slot, older_slot = slots[newer], slots[1 - newer]
    permissions = [
        {
            "resource": key,
            "resourceAppId": app_id,
            "name": claim,
            "type": "Scope",
            "id": principal.oauth2_permission_scope_ids[claim],
            "grantedBy": "admin-consent",
        }
        for app_id, key, principal, claims in (
            (EXCHANGE_APP_ID, "exchange", exchange, EXCHANGE_CLAIMS),
            (GRAPH_APP_ID, "graph", graph, GRAPH_CLAIMS),
        )
        for claim in claims
    ]
    return {
        "portal": name,
        "schemaVersion": 2,
        "tenantId": tenant_id,
        "clientId": client_id,
        "applicationObjectId": app_object_id,
        "servicePrincipalObjectId": sp_object_id,
        "displayName": f"Intrexx {name} ({settings.environment})",
        "environment": settings.environment,
        "cloud": "global",
        "connector": "exchange",
        "api": "ews",
        "access": "delegated",
        "baseUrl": base_url,
        "signIn": False,
        "publicClient": True,
        "authorityHost": login,
        "authority": authority,
        "tokenEndpoint": f"{authority}/oauth2/v2.0/token",
        "authorizeEndpoint": f"{authority}/oauth2/v2.0/authorize",
        "deviceCodeEndpoint": f"{authority}/oauth2/v2.0/devicecode",
        "jwksUri": f"{authority}/discovery/v2.0/keys",
        "issuer": f"{authority}/v2.0",
        "userInfoEndpoint": "https://graph.microsoft.com/oidc/userinfo",
        "resource": "https://outlook.office365.com",
        "graphEndpoint": "https://graph.microsoft.com",
        "scopes": ["https://outlook.office365.com/EWS.AccessAsUser.All", *GRAPH_CLAIMS],
        "permissions": permissions,
        "redirectUris": [f"{base_url}/{path}" for path in REDIRECT_PATHS],
        "secretKeyId": key_id,
        "secretExpiresAt": f"{newer_slot[2].isoformat()}T00:00:00Z",
        "secretRotatesAt": f"{older_slot[2].isoformat()}T00:00:00Z",
        "secretRotationDays": settings.secret_rotation_days,
        "previousSecretKeyId": previous_key_id,
        "previousSecretExpiresAt": f"{older_slot[2].isoformat()}T00:00:00Z",
        "ewsUrl": "https://outlook.office365.com/EWS/Exchange.asmx",
    }
