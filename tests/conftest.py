"""pytest configuration: the loopback OpenID provider fixture lives in idp_fixture.py; helpers in helpers.py.

`make test` runs the suite with pytest-xdist on every core (`-n auto`). That holds because:
- every server a fixture starts (the OpenID provider, the Graph stand-in, the hostile authority, the policy pack's
  process) listens on a port the system picks (port 0) and keeps its files in a temporary folder of its own, so each
  worker has its own servers and no two workers share a file;
- `-n auto` starts one worker more than there are cores (the hook below): about a third of the suite's time is
  spent waiting (verify's timeouts and replication delays against the test OpenID provider, dripping servers),
  and a third worker keeps the cores busy meanwhile (on 2 cores: 82-88 s with 3 workers, 102 s with 2, measured
  back to back on a shared machine); PYTEST_XDIST_AUTO_NUM_WORKERS still overrides it;
- a test id is the same in every process: xdist refuses to run when its workers collect different ids, so an id must
  never hold a memory address (`<object object at 0x...>`): give a sentinel a `__repr__` or the parameter an `ids=`.
  The hook below refuses such an id at collection, with or without xdist.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import settings

pytest_plugins = ["idp_fixture", "tools"]

# No per-example deadline: on a loaded 2-core CI machine a slow example is not a failure (speed targets live in
# `make bench`, never in tests).
settings.register_profile("intrexx-exchange", deadline=None)
settings.load_profile("intrexx-exchange")

_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unstable = [item.nodeid for item in items if _MEMORY_ADDRESS.search(item.nodeid)]
    if unstable:
        raise pytest.UsageError(
            "test ids must be the same in every process (pytest-xdist compares them); these hold a memory address, "
            "give the parameter a __repr__ or ids=: " + ", ".join(unstable)
        )


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: the suite also runs without the plugin (-p no:xdist)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own reading of the variable
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1
