"""Per-portal status by date: secret expiry and rotation, EWS retirement, the Intrexx refresh-token reminder."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from components.catalogue import EWS_BLOCKED_FROM, EWS_SHUTDOWN
from components.names import Field

from .errors import OutputsError
from .stack_outputs import PortalOutputs

REFRESH_TOKEN_REMINDER = (
    "Intrexx keeps each mailbox user's refresh token for about three months: request it again with "
    "\"Request MS365 Refresh Token\" in the data source about every three months"
)


class StatusKey:
    """Keys of `status --json`, one object per portal."""

    PORTAL = "portal"
    SECRET_EXPIRES_AT = "secretExpiresAt"
    DAYS_LEFT = "daysLeft"
    SECRET_ROTATES_AT = "secretRotatesAt"
    EXPIRING = "expiring"
    EWS = "ews"
    REFRESH_TOKEN_REMINDER = "refreshTokenReminder"
    MESSAGES = "messages"


@dataclass(frozen=True)
class PortalStatus:
    name: str
    secret_expires_at: date
    days_left: int
    rotates_at: date
    expiring: bool
    ews: str | None
    refresh_token_reminder: str | None
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            StatusKey.PORTAL: self.name,
            StatusKey.SECRET_EXPIRES_AT: self.secret_expires_at.isoformat(),
            StatusKey.DAYS_LEFT: self.days_left,
            StatusKey.SECRET_ROTATES_AT: self.rotates_at.isoformat(),
            StatusKey.EXPIRING: self.expiring,
            StatusKey.EWS: self.ews,
            StatusKey.REFRESH_TOKEN_REMINDER: self.refresh_token_reminder,
            StatusKey.MESSAGES: list(self.messages),
        }


def portal_status(portal: PortalOutputs, today: date, warn_days: int) -> PortalStatus:
    expires_at = _date(portal, Field.SECRET_EXPIRES_AT)
    rotates_at = _date(portal, Field.SECRET_ROTATES_AT)
    days_left = (expires_at - today).days
    expiring = days_left <= warn_days
    renew = "run `pulumi up`, then `python -m intrexx_connector render` and enter the new secret in the data source"
    messages = []
    if days_left <= 0:
        messages.append(f"the client secret expired on {expires_at.isoformat()} (Entra answers AADSTS7000222): "
                        f"{renew}")
    elif expiring:
        messages.append(f"the client secret expires on {expires_at.isoformat()}, in {days_left} days (warning "
                        f"within {warn_days} days): {renew}")
    if today >= rotates_at and days_left > 0:
        messages.append(f"secret rotation due since {rotates_at.isoformat()}: {renew}")
    ews = ews_status(today, portal[Field.CLIENT_ID]) if portal[Field.API] == "ews" else None
    if ews:
        messages.append(ews)
    reminder = REFRESH_TOKEN_REMINDER if portal[Field.ACCESS] == "delegated" else None
    return PortalStatus(portal.name, expires_at, days_left, rotates_at, expiring, ews, reminder, messages)


def ews_status(today: date, client_id: str) -> str:
    """One line on EWS in Exchange Online as of `today`."""
    if today < EWS_BLOCKED_FROM:
        last_day = EWS_BLOCKED_FROM - timedelta(days=1)
        return (f"EWS works until {last_day.isoformat()}; from {EWS_BLOCKED_FROM.isoformat()} Exchange Online "
                f"blocks it unless the tenant allow-lists this app ({client_id}) with Set-OrganizationConfig "
                f"-EwsAllowedAppIDs, and on {EWS_SHUTDOWN.isoformat()} switches it off for good: move to api: graph")
    if today < EWS_SHUTDOWN:
        days = (EWS_SHUTDOWN - today).days
        return (f"EWS blocked since {EWS_BLOCKED_FROM.isoformat()} unless the tenant sets EWSEnabled and "
                f"allow-lists this app ({client_id}) with Set-OrganizationConfig -EwsAllowedAppIDs; switched off "
                f"for good on {EWS_SHUTDOWN.isoformat()}, in {days} days: move to api: graph")
    return (f"EWS switched off since {EWS_SHUTDOWN.isoformat()}: this portal cannot reach Exchange Online; "
            "move to api: graph")


def _date(portal: PortalOutputs, key: str) -> date:
    value = portal[key]
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise OutputsError(f"portals.{portal.name}.{key} is not an ISO 8601 date: {value!r}") from None
