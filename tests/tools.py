"""External test tools (Debian packages) that some tests need: `chromium` (the report's DOM and screenshot) and
`promtool` from `prometheus` (metrics and alert rules). `.ci/run` installs them; where one is missing its tests skip
with a reason naming the package, and the end of the pytest run lists what was missing (`make test` shows it)."""

from __future__ import annotations

import shutil

import pytest

MISSING = "missing tool: "


def require(tool: str, package: str) -> str:
    """The tool's path, or skip the test naming the Debian package that provides it."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{MISSING}{tool} (Debian package {package}: apt-get install -y --no-install-recommends {package})")
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    reasons = set()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if MISSING in text:
            reasons.add(text[text.index(MISSING) + len(MISSING) :].split(" (", 1)[0] + " (" + text.split(" (", 1)[1])
    if reasons:
        terminalreporter.write_sep("=", "missing test tools", yellow=True)
        for reason in sorted(reasons):
            terminalreporter.write_line(f"missing: {reason}")
