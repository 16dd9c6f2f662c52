"""Per-portal status by date: secret expiry and rotation, EWS retirement, the Intrexx refresh-token reminder."""

from dataclasses import dataclass, field
from datetime import date

from components.contract import PortalOutput
from components.ews import ews_state

REFRESH_TOKEN_REMINDER = (
    "Intrexx keeps each mailbox user's refresh token for about three months: request it again with "
    '"Request MS365 Refresh Token" in the data source about every three months'
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


def portal_status(portal: PortalOutput, today: date, warn_days: int) -> PortalStatus:
    expires_at, rotates_at = portal.secret_expires_at, portal.secret_rotates_at
    days_left = (expires_at - today).days
    expiring = days_left <= warn_days
    renew = "run `pulumi up`, then `python -m intrexx_connector render` and enter the new secret in the data source"
    messages = []
    if days_left <= 0:
        messages.append(f"the client secret expired on {expires_at.isoformat()} (Entra answers AADSTS7000222): {renew}")
    elif expiring:
        messages.append(
            f"the client secret expires on {expires_at.isoformat()}, in {days_left} days (warning "
            f"within {warn_days} days): {renew}"
        )
    if today >= rotates_at and days_left > 0:
        messages.append(f"secret rotation due since {rotates_at.isoformat()}: {renew}")
    ews = ews_status(today, portal.client_id) if portal.uses_ews else None
    if ews:
        messages.append(ews)
    reminder = REFRESH_TOKEN_REMINDER if portal.delegated else None
    return PortalStatus(portal.name, expires_at, days_left, rotates_at, expiring, ews, reminder, messages)


def ews_status(today: date, client_id: str) -> str:
    """One line on EWS in Exchange Online as of `today`, for the app `client_id`, and the way off it."""
    return (
        f"{ews_state(today)} (this app: {client_id}). Move to Microsoft Graph: add a `connector: m365` portal entry "
        "for this portal, move its Intrexx applications to the Microsoft 365 connector, then remove this "
        '`connector: exchange` entry (README "Migrating from EWS to Microsoft Graph")'
    )
