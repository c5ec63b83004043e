"""Prints what the runner self-tests measured, whether or not they passed."""

from __future__ import annotations

from probe_sdf import MEASURED


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("Beam runner behaviour measured")
        for line in MEASURED:
            terminalreporter.write_line(line)
