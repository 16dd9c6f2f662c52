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
    SECRET_KEY_ID = "secretKeyId"
    SECRET_EXPIRES_AT = "secretExpiresAt"
    DAYS_LEFT = "daysLeft"
    SECRET_ROTATES_AT = "secretRotatesAt"
    PREVIOUS_SECRET_KEY_ID = "previousSecretKeyId"
    PREVIOUS_SECRET_STOPS = "previousSecretStops"
    HAND_MADE_SECRET_KEY_IDS = "handMadeSecretKeyIds"
    EXPIRING = "expiring"
    EWS = "ews"
    REFRESH_TOKEN_REMINDER = "refreshTokenReminder"
    MESSAGES = "messages"


@dataclass(frozen=True)
class PortalStatus:
    name: str
    secret_key_id: str
    secret_expires_at: date
    days_left: int
    rotates_at: date
    previous_secret_key_id: str
    previous_secret_stops: date
    hand_made_secret_key_ids: tuple[str, ...]
    expiring: bool
    ews: str | None
    refresh_token_reminder: str | None
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            StatusKey.PORTAL: self.name,
            StatusKey.SECRET_KEY_ID: self.secret_key_id,
            StatusKey.SECRET_EXPIRES_AT: self.secret_expires_at.isoformat(),
            StatusKey.DAYS_LEFT: self.days_left,
            StatusKey.SECRET_ROTATES_AT: self.rotates_at.isoformat(),
            StatusKey.PREVIOUS_SECRET_KEY_ID: self.previous_secret_key_id,
            StatusKey.PREVIOUS_SECRET_STOPS: self.previous_secret_stops.isoformat(),
            StatusKey.HAND_MADE_SECRET_KEY_IDS: list(self.hand_made_secret_key_ids),
            StatusKey.EXPIRING: self.expiring,
            StatusKey.EWS: self.ews,
            StatusKey.REFRESH_TOKEN_REMINDER: self.refresh_token_reminder,
            StatusKey.MESSAGES: list(self.messages),
        }


def handover_steps(portal: PortalOutput, stack: str) -> str:
    """The exact commands that hand a portal's published secret to Intrexx."""
    where = (
        "the Exchange data source's OAuth2 settings"
        if portal.uses_ews
        else "the Microsoft 365 connector's registration"
    )
    steps = (
        f"run `python -m intrexx_connector render --stack {stack}` and enter the client secret from "
        f"build/{stack}/{portal.name}/{portal.connector.value}-connector.json in {where} in the Portal Manager"
    )
    if portal.sign_in:
        steps += (
            f", then `python -m intrexx_connector apply --stack {stack} --portal {portal.name} --portal-dir "
            "<portal directory>` and restart the portal server (om.cfg holds the secret too)"
        )
    return steps


def portal_status(portal: PortalOutput, today: date, warn_days: int, stack: str = "<stack>") -> PortalStatus:
    expires_at, rotates_at = portal.secret_expires_at, portal.secret_rotates_at
    previous_stops = portal.previous_secret_expires_at
    days_left = (expires_at - today).days
    expiring = days_left <= warn_days
    handover = handover_steps(portal, stack)
    renew = f"run `pulumi up` (it rotates the secrets), then {handover}"
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
    previous_days = (previous_stops - today).days
    if 0 < previous_days <= warn_days:
        messages.append(
            f"the previous secret ({portal.previous_secret_key_id}) stops working on {previous_stops.isoformat()}, "
            f"in {previous_days} days: if Intrexx still holds it, {handover}"
        )
    hand_made = portal.hand_made_secret_key_ids or ()
    for key_id in hand_made:
        messages.append(
            f"hand-made secret {key_id} of this adopted registration: remove it once Intrexx uses the published "
            f"secret (`az ad app credential delete --id {portal.client_id} --key-id {key_id}`)"
        )
    ews = ews_status(today, portal.client_id) if portal.uses_ews else None
    if ews:
        messages.append(ews)
    # "Request MS365 Refresh Token" is the Exchange connector's per-user sign-in (help.intrexx.com
    # integration-connector-exchange-ms365-refresh-token: valid for about three months).
    reminder = REFRESH_TOKEN_REMINDER if portal.uses_ews else None
    return PortalStatus(
        portal.name,
        portal.secret_key_id,
        expires_at,
        days_left,
        rotates_at,
        portal.previous_secret_key_id,
        previous_stops,
        tuple(hand_made),
        expiring,
        ews,
        reminder,
        messages,
    )


def ews_status(today: date, client_id: str) -> str:
    """One line on EWS in Exchange Online as of `today`, for the app `client_id`, and the way off it."""
    return (
        f"{ews_state(today)} (this app: {client_id}). Move to Microsoft Graph: add a `connector: m365` portal entry "
        "for this portal, move its Intrexx applications to the Microsoft 365 connector, then remove this "
        '`connector: exchange` entry (README "Migrating from EWS to Microsoft Graph")'
    )
