"""Names of the stack outputs: one module shared by the program, the post-deploy step and the tests."""

PORTALS = "portals"
CLIENT_SECRETS = "clientSecrets"


class Field:
    """Keys of each object in the `portals` output."""

    PORTAL = "portal"
    TENANT_ID = "tenantId"
    CLIENT_ID = "clientId"
    APPLICATION_OBJECT_ID = "applicationObjectId"
    SERVICE_PRINCIPAL_OBJECT_ID = "servicePrincipalObjectId"
    DISPLAY_NAME = "displayName"
    ENVIRONMENT = "environment"
    CLOUD = "cloud"
    API = "api"
    ACCESS = "access"
    BASE_URL = "baseUrl"
    SIGN_IN = "signIn"
    PUBLIC_CLIENT = "publicClient"
    AUTHORITY_HOST = "authorityHost"
    AUTHORITY = "authority"
    TOKEN_ENDPOINT = "tokenEndpoint"
    AUTHORIZE_ENDPOINT = "authorizeEndpoint"
    DEVICE_CODE_ENDPOINT = "deviceCodeEndpoint"
    JWKS_URI = "jwksUri"
    ISSUER = "issuer"
    USER_INFO_ENDPOINT = "userInfoEndpoint"
    RESOURCE = "resource"
    GRAPH_ENDPOINT = "graphEndpoint"
    SCOPES = "scopes"
    PERMISSIONS = "permissions"
    REDIRECT_URIS = "redirectUris"
    SIGN_IN_REDIRECT_URI = "signInRedirectUri"
    EWS_URL = "ewsUrl"
    MAILBOX_SCOPE = "mailboxScope"
    SECRET_KEY_ID = "secretKeyId"
    SECRET_EXPIRES_AT = "secretExpiresAt"
    SECRET_ROTATES_AT = "secretRotatesAt"
    SECRET_ROTATION_DAYS = "secretRotationDays"


class PermissionField:
    """Keys of each entry of `portals.<name>.permissions`."""

    RESOURCE = "resource"
    RESOURCE_APP_ID = "resourceAppId"
    NAME = "name"
    TYPE = "type"
    ID = "id"
    GRANTED_BY = "grantedBy"
    EXCHANGE_ROLE = "exchangeRole"


class MailboxScopeField:
    """Keys of `portals.<name>.mailboxScope` (and of the `mailboxScope` config key)."""

    GROUP_ID = "groupId"
    RECIPIENT_FILTER = "recipientFilter"


# Values of PermissionField.TYPE: Entra's own words for delegated and application permissions.
SCOPE = "Scope"
ROLE = "Role"

# Values of PermissionField.GRANTED_BY.
ADMIN_CONSENT = "admin-consent"
EXCHANGE_RBAC = "exchange-rbac"

REQUIRED_FIELDS = (
    Field.TENANT_ID,
    Field.CLIENT_ID,
    Field.APPLICATION_OBJECT_ID,
    Field.SERVICE_PRINCIPAL_OBJECT_ID,
    Field.DISPLAY_NAME,
    Field.ENVIRONMENT,
    Field.CLOUD,
    Field.API,
    Field.ACCESS,
    Field.AUTHORITY_HOST,
    Field.AUTHORITY,
    Field.TOKEN_ENDPOINT,
    Field.AUTHORIZE_ENDPOINT,
    Field.DEVICE_CODE_ENDPOINT,
    Field.RESOURCE,
    Field.SCOPES,
    Field.PERMISSIONS,
    Field.REDIRECT_URIS,
    Field.SECRET_EXPIRES_AT,
    Field.SECRET_ROTATES_AT,
)
