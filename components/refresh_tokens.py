"""The Connector for Microsoft Exchange's MS365 refresh tokens: when they must be requested again.

Intrexx, "Request MS365 refresh token (update token)" (help.intrexx.com/intrexx/steady/en-us/Content/OH/
integration-connector-exchange-ms365-refresh-token.html): "The refresh token is stored in the MediaGateway. It is
valid for three months. The token must then be manually requested again." Intrexx names no exact day; Entra's own
refresh tokens last 90 days and renew on use (learn.microsoft.com/entra/identity-platform/refresh-tokens). Assumption:
the re-request is due three calendar months after the recorded request date (`portals[].refreshTokensRequestedOn`),
on the same day of the month, or the month's last day when it has no such day.

A leaf: standard library only.
"""

from __future__ import annotations

import calendar
from datetime import date

VALID_MONTHS = 3


def refresh_tokens_due(requested_on: date, months: int = VALID_MONTHS) -> date:
    """The day the refresh tokens requested on `requested_on` must be requested again."""
    month_index = requested_on.month - 1 + months
    year, month = requested_on.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(requested_on.day, calendar.monthrange(year, month)[1]))
