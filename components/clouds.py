"""The Microsoft clouds a stack can deploy to: every per-cloud fact lives on its `Cloud` record.

Sources: learn.microsoft.com/entra/identity-platform/authentication-national-cloud (authority hosts),
learn.microsoft.com/graph/deployments (Graph endpoints), learn.microsoft.com/exchange/client-developer/
exchange-web-services/how-to-authenticate-an-ews-application-by-using-oauth (EWS endpoint), the azuread provider's
`environment` setting (pulumi-azuread docs: global, usgovernment, dod, china and their aliases),
`Connect-ExchangeOnline -ExchangeEnvironmentName` (learn.microsoft.com/powershell/module/exchange/
connect-exchangeonline), and the device code flow's verification_uri per cloud
(learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
"""

from dataclasses import dataclass
from enum import StrEnum


class CloudName(StrEnum):
    GLOBAL = "global"
    USGOVERNMENT = "usgovernment"
    DOD = "dod"
    CHINA = "china"


@dataclass(frozen=True)
class Cloud:
    name: CloudName
    azuread_environments: tuple[str, ...]  # the azuread provider's names for this cloud, canonical one first
    login: str  # authority host
    graph: str  # Microsoft Graph endpoint (bare origin)
    exchange: str  # Exchange Online endpoint: the EWS resource
    device_login_page: str  # where the device code flow sends the user
    exchange_powershell_environment: str  # Connect-ExchangeOnline -ExchangeEnvironmentName

    @property
    def azuread_environment(self) -> str:
        return self.azuread_environments[0]

    @property
    def ews_url(self) -> str:
        return f"{self.exchange}/EWS/Exchange.asmx"

    @property
    def user_info_endpoint(self) -> str:
        return f"{self.graph}/oidc/userinfo"


CLOUDS: dict[CloudName, Cloud] = {
    cloud.name: cloud
    for cloud in (
        Cloud(
            CloudName.GLOBAL,
            ("global", "public"),
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
            "https://outlook.office365.com",
            "https://microsoft.com/devicelogin",
            "O365Default",
        ),
        Cloud(
            CloudName.USGOVERNMENT,
            ("usgovernment", "usgovernmentl4"),
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
            "https://outlook.office365.us",
            "https://microsoft.com/deviceloginus",
            "O365USGovGCCHigh",
        ),
        Cloud(
            CloudName.DOD,
            ("dod", "usgovernmentl5"),
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
            "https://outlook-dod.office365.us",
            "https://microsoft.com/deviceloginus",
            "O365USGovDoD",
        ),
        # China: MSAL marks login.chinacloudapi.cn as deprecated in favour of login.partner.microsoftonline.cn
        # (msal/authority.py AZURE_CHINA). DoD: Exchange Online (the EWS resource and its token audience) is
        # https://outlook-dod.office365.us: microsoft/CSS-Exchange Shared/AzureFunctions/Get-CloudServiceEndpoint.ps1,
        # "USGovernmentL5": $exchangeOnlineEndpoint = "https://outlook-dod.office365.us"; webmail.apps.mil is the
        # DoD users' Outlook on the web, not the token resource. The stack key `exchangeEndpoint` still overrides
        # any cloud's Exchange endpoint.
        Cloud(
            CloudName.CHINA,
            ("china",),
            "https://login.partner.microsoftonline.cn",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://partner.outlook.cn",
            "https://microsoft.com/deviceloginchina",
            "O365China",
        ),
    )
}

# Authority hosts that serve Entra's instance discovery (MSAL's KNOWN_AUTHORITIES and their aliases); any other
# host (a private endpoint, a test provider) is used as given, without a call to the public discovery endpoint.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        *(cloud.login.removeprefix("https://") for cloud in CLOUDS.values()),
        "login.microsoft.com",
        "login.windows.net",
        "login.chinacloudapi.cn",
    }
)


def cloud_of_provider(environment: str) -> Cloud | None:
    """The cloud the azuread provider signs in to for its `environment` setting (aliases included)."""
    for cloud in CLOUDS.values():
        if environment.lower() in cloud.azuread_environments:
            return cloud
    return None


@dataclass(frozen=True)
class TenantEndpoints:
    """The OAuth2 / OpenID Connect v2.0 endpoints of one tenant at one authority host."""

    authority_host: str
    tenant_id: str

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def token(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def authorize(self) -> str:
        return f"{self.authority}/oauth2/v2.0/authorize"

    @property
    def device_code(self) -> str:
        return f"{self.authority}/oauth2/v2.0/devicecode"

    @property
    def jwks(self) -> str:
        return f"{self.authority}/discovery/v2.0/keys"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"
