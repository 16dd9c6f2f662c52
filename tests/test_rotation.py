"""Two-slot secret rotation: properties over any sequence of run dates with at least one run per period."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from components.facts import MAX_ROTATION_DAYS, MIN_ROTATION_DAYS
from components.rotation import EPOCH, period_start, secret_schedule

rotation_days = st.integers(min_value=MIN_ROTATION_DAYS, max_value=MAX_ROTATION_DAYS)
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2040, 12, 31))


def inputs(schedule):
    return [(slot.index, slot.rotation_key, slot.end_date) for slot in schedule.slots]


@given(days, rotation_days)
def test_schedule_is_a_function_of_the_period(today, r):
    schedule = secret_schedule(today, r)
    start = period_start((today - EPOCH).days // r, r)
    for day in (start, start + timedelta(days=r - 1), today):
        assert inputs(secret_schedule(day, r)) == inputs(schedule)
    assert schedule.rotates_at == start + timedelta(days=r)


@given(days, rotation_days)
def test_slot_lifetimes(today, r):
    schedule = secret_schedule(today, r)
    for slot in schedule.slots:
        assert slot.expires - slot.created_in == timedelta(days=2 * r)
        assert slot.created_in <= today < slot.expires
    assert schedule.newer.created_in <= today < schedule.rotates_at
    older = schedule.slots[1 - schedule.newer.index]
    assert schedule.newer.created_in - older.created_in == timedelta(days=r)
    # the published secret outlives the next rotation by R days
    assert schedule.newer.expires - schedule.rotates_at >= timedelta(days=r)


@st.composite
def run_dates(draw):
    """Run dates with at least one run in every period (and some days with several runs)."""
    r = draw(rotation_days)
    first = draw(days)
    periods = draw(st.integers(min_value=2, max_value=12))
    base = (first - EPOCH).days // r
    runs = []
    for p in range(base, base + periods):
        start = period_start(p, r)
        offsets = draw(st.lists(st.integers(min_value=0, max_value=r - 1), min_size=1, max_size=3))
        runs.extend(start + timedelta(days=o) for o in sorted(offsets))
    return r, runs


@settings(max_examples=300)
@given(run_dates())
def test_any_run_sequence_keeps_a_valid_overlapping_secret(case):
    """Simulate Pulumi: a slot whose inputs change is replaced (create before delete), else kept."""
    r, runs = case
    live = {}  # slot -> (created, expires, key)
    published = None  # (created, expires) of the secret the outputs publish
    previous = None
    for run in runs:
        schedule = secret_schedule(run, r)
        replaced = 0
        for slot in schedule.slots:
            wanted = (slot.rotation_key, slot.expires)
            if slot.index not in live or live[slot.index][2] != wanted:
                live[slot.index] = (run, slot.expires, wanted)
                replaced += 1
        if previous is not None:
            assert replaced <= 1, "a run replaced both slots: no overlap would remain"
            if (previous - EPOCH).days // r == (run - EPOCH).days // r:
                assert replaced == 0, "a second run in the same period changed a secret"
        newer = live[schedule.newer.index]
        assert newer[0] <= run < newer[1], "the published secret must be valid when published"
        if published is not None and published != newer[:2]:
            # The secret Intrexx used until now stays valid at least until the next period boundary...
            _, old_expires = published
            assert old_expires >= schedule.rotates_at
            # ...that is, for R days minus how late in its period this run came.
            lateness = (run - period_start((run - EPOCH).days // r, r)).days
            assert (old_expires - run).days >= r - lateness
            # and it is still live (not deleted): it sits in the other slot
            other = live[1 - schedule.newer.index]
            assert (other[0], other[1]) == published
        published = newer[:2]
        previous = run
