"""Endpoints of the Microsoft national clouds.

Sources: learn.microsoft.com/entra/identity-platform/authentication-national-cloud,
learn.microsoft.com/graph/deployments, learn.microsoft.com/exchange/.../ews-applications (EWS endpoint).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    azuread_environment: str
    login: str
    graph: str
    exchange: str

    @property
    def ews_url(self) -> str:
        return f"{self.exchange}/EWS/Exchange.asmx"


CLOUDS = {
    cloud.name: cloud
    for cloud in (
        Cloud("global", "global", "https://login.microsoftonline.com", "https://graph.microsoft.com",
              "https://outlook.office365.com"),
        Cloud("usgovernment", "usgovernment", "https://login.microsoftonline.us", "https://graph.microsoft.us",
              "https://outlook.office365.us"),
        Cloud("dod", "dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us",
              "https://webmail.apps.mil"),
        Cloud("china", "china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn",
              "https://partner.outlook.cn"),
    )
}


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
