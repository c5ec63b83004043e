"""Lag monitoring: ``beam-tunnel lag`` and ``beam-tunnel monitor``, for the
emulator or the real service.

Status: experimental; the API may change.

Modules, imports pointing down (the client, never the emulator):

* ``durations`` - parse and print durations (pure).
* ``snapshot`` - :class:`LagSnapshot`, built from DescribeTunnel: per
  channel status, owner, consume point and lag; the expiry figures (pure).
* ``guard`` - thresholds -> level -> exit code (pure).
* ``render`` - text table and JSON dict (pure).
* ``history`` - bounded lag series for charts (pure).
* ``service`` - :class:`LagReader`: DescribeTunnel, DescribeTable (stream
  retention) and the service's clock.
* ``plot`` - ``--plot`` PNG (optional matplotlib).
* ``web`` / ``_page`` - the ``monitor`` page and its JSON endpoint.
* ``commands`` - the two subcommands' arguments and the ``lag`` loop.
"""

from .commands import add_monitoring_subcommands
from .guard import Level, Thresholds, Verdict, evaluate
from .history import LagHistory
from .snapshot import ChannelLag, Expiry, LagSnapshot, Retention, build_snapshot

__all__ = [
    "add_monitoring_subcommands",
    "LagReader",
    "LagSnapshot",
    "ChannelLag",
    "Expiry",
    "Retention",
    "build_snapshot",
    "Level",
    "Thresholds",
    "Verdict",
    "evaluate",
    "LagHistory",
]


def __getattr__(name):
    # LagReader pulls in requests; the pure pieces stay importable without it.
    if name == "LagReader":
        from .service import LagReader

        return LagReader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
