"""EWS in Exchange Online over time: the one place that knows its phases and words them.

Source: Microsoft 365 message center MC1176266 / MC1227454 (via third-party copies) and the
Set-OrganizationConfig documentation of `-EwsEnabled` / `-EwsAllowedAppIDs` (office-docs-powershell PR 13643):
the blocking is phased: it *begins* on 2026-10-01 and reaches tenants one by one (MC1227454), so a tenant may
still have EWS for a while after that day; a tenant whose administrator enables EWS and lists the app in the EWS
allow list keeps it; on 2027-04-01 it is switched off for good. Microsoft Graph replaces it. The sentences say
"from", never "since": nobody can tell from a date whether a given tenant is blocked yet.
"""

from datetime import date, timedelta
from enum import StrEnum

EWS_BLOCKED_FROM = date(2026, 10, 1)
EWS_SHUTDOWN = date(2027, 4, 1)


class EwsPhase(StrEnum):
    OPEN = "open"  # EWS works; the allow list is optional
    ALLOW_LIST_REQUIRED = "allow-list-required"  # blocked unless the tenant allow-lists the app
    RETIRED = "retired"  # switched off for good


def ews_phase(day: date) -> EwsPhase:
    if day < EWS_BLOCKED_FROM:
        return EwsPhase.OPEN
    if day < EWS_SHUTDOWN:
        return EwsPhase.ALLOW_LIST_REQUIRED
    return EwsPhase.RETIRED


def ews_state(day: date) -> str:
    """One sentence on EWS in Exchange Online as of `day`, for warnings, status lines and sheets."""
    allow_list = (
        "the tenant enables it (EWSEnabled) and lists this app in its EWS allow list "
        "(Set-OrganizationConfig -EwsAllowedAppIDs)"
    )
    phase = ews_phase(day)
    if phase is EwsPhase.OPEN:
        last_open_day = EWS_BLOCKED_FROM - timedelta(days=1)
        return (
            f"EWS in Exchange Online works until {last_open_day.isoformat()}; from {EWS_BLOCKED_FROM.isoformat()} "
            f"Microsoft blocks it tenant by tenant unless {allow_list}, and on {EWS_SHUTDOWN.isoformat()} it is "
            "switched off for good"
        )
    if phase is EwsPhase.ALLOW_LIST_REQUIRED:
        days = (EWS_SHUTDOWN - day).days
        return (
            f"EWS in Exchange Online is blocked tenant by tenant from {EWS_BLOCKED_FROM.isoformat()} unless "
            f"{allow_list}, and is switched off for good on {EWS_SHUTDOWN.isoformat()}, in {days} days"
        )
    return f"EWS in Exchange Online was switched off on {EWS_SHUTDOWN.isoformat()}: the portal cannot reach Exchange"
