"""Client secrets in two slots with staggered, calendar-driven rotation.

Time is cut into periods of R = `secretRotationDays` days, counted from EPOCH. Slot 0 gets a new secret in
every even period, slot 1 in every odd one, so each slot is replaced every 2R days and the two are R days
apart. A secret made in period p expires 2R days after the period began (at most 180 days: R is at most
facts.MAX_ROTATION_DAYS, so that every secret passes the policy pack's lifetime limit on every day), so the
secret published before it stays valid until the next period boundary, and is deleted only when its own slot
rotates. Everything is a function of the date alone: runs on the same day, or anywhere in the same period, ask
Entra for identical inputs, and the first run after a boundary replaces exactly one slot.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from .facts import MAX_ROTATION_DAYS, MIN_ROTATION_DAYS, secret_lifetime_days

EPOCH = date(2024, 1, 1)
SLOTS = (0, 1)


@dataclass(frozen=True)
class SecretSlot:
    index: int
    created_in: date  # first day of the period in which this slot's current secret is made
    expires: date

    @property
    def rotation_key(self) -> str:
        return f"slot{self.index}-{self.created_in.isoformat()}"

    @property
    def end_date(self) -> str:
        """RFC 3339, as ApplicationPassword.end_date expects."""
        return f"{self.expires.isoformat()}T00:00:00Z"


@dataclass(frozen=True)
class SecretSchedule:
    slots: tuple[SecretSlot, SecretSlot]  # by index
    newer: SecretSlot  # the slot rotated at the start of the current period: the one to publish
    rotates_at: date  # next period boundary: the other slot gets a new secret and is published then
    rotation_days: int

    @property
    def older(self) -> SecretSlot:
        """The slot published before `newer`: Intrexx may still hold its secret, which expires at `rotates_at`."""
        return self.slots[1 - self.newer.index]


def period_start(index: int, rotation_days: int) -> date:
    return EPOCH + timedelta(days=index * rotation_days)


def secret_schedule(today: date, rotation_days: int) -> SecretSchedule:
    if not MIN_ROTATION_DAYS <= rotation_days <= MAX_ROTATION_DAYS:
        raise ValueError(f"rotation_days must be {MIN_ROTATION_DAYS}..{MAX_ROTATION_DAYS}, got {rotation_days}")
    current = (today - EPOCH).days // rotation_days
    lifetime = timedelta(days=secret_lifetime_days(rotation_days))
    slots = []
    for index in SLOTS:
        created = current if (current - index) % 2 == 0 else current - 1
        start = period_start(created, rotation_days)
        slots.append(SecretSlot(index, start, start + lifetime))
    newer = slots[current % 2]
    return SecretSchedule((slots[0], slots[1]), newer, period_start(current + 1, rotation_days), rotation_days)
