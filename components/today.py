"""The date the program plans for: today in UTC, or INTREXX_EXCHANGE_TODAY (YYYY-MM-DD) to pin it."""

import os
from datetime import date, datetime, timezone

TODAY_VARIABLE = "INTREXX_EXCHANGE_TODAY"


def today() -> date:
    pinned = os.environ.get(TODAY_VARIABLE)
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            raise ValueError(f"{TODAY_VARIABLE} must be a date YYYY-MM-DD, got {pinned!r}") from None
    return datetime.now(timezone.utc).date()
