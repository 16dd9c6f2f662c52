"""The date the program plans for: today in UTC, or INTREXX_EXCHANGE_TODAY (YYYY-MM-DD) to pin it."""

import os
import re
from datetime import UTC, date, datetime

TODAY_VARIABLE = "INTREXX_EXCHANGE_TODAY"
# The rotation schedule counts periods from 2024-01-01 (components/rotation.py); a pinned date outside this
# range is a typo, and at the calendar's ends the schedule's dates would not exist.
EARLIEST = date(2024, 1, 1)
LATEST = date(2999, 12, 31)


def today() -> date:
    pinned = os.environ.get(TODAY_VARIABLE)
    if not pinned:
        return datetime.now(UTC).date()
    try:
        # fromisoformat also reads ISO week dates (2026-W01-1) and other digits; only YYYY-MM-DD is meant.
        day = date.fromisoformat(pinned) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", pinned) else None
    except ValueError:
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        from .config import ConfigError  # only here: commands that read no stack file need not load config

        raise ConfigError(
            [f"{TODAY_VARIABLE}: must be a date YYYY-MM-DD from {EARLIEST} to {LATEST}, got {pinned[:40]!r}"]
        )
    return day
