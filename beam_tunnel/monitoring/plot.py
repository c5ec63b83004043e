"""``--plot lag.png``: a tunnel's lag over time as a PNG chart.

Needs matplotlib, an optional extra: ``pip install 'beam_tunnel[monitor]'``.
The figure is drawn with the Agg canvas directly, so no GUI backend is
touched and the global pyplot state of a host program is left alone.
"""

from __future__ import annotations

import datetime
from typing import Optional, Sequence, Tuple

from .durations import format_duration
from .history import LagHistory

__all__ = ["write_lag_png", "require_matplotlib", "DEFAULT_SIZE_PX"]

DEFAULT_SIZE_PX = (1000, 500)

_DPI = 100
# Beyond this many channels a legend hides the chart; the rest are drawn
# but not named.
_MAX_LEGEND_CHANNELS = 8
# (divisor, unit label) by the largest lag shown.
_UNITS = ((86400.0, "days"), (3600.0, "hours"), (60.0, "minutes"), (1.0, "seconds"))


def require_matplotlib():
    """The matplotlib pieces the plot needs; ImportError with the install
    command when matplotlib is missing."""
    try:
        from matplotlib import dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"--plot needs matplotlib, which is not installed ({err}); "
            "install it with: pip install 'beam_tunnel[monitor]'"
        ) from err
    return Figure, FigureCanvasAgg, mdates


def _unit(largest_s: float) -> Tuple[float, str]:
    for divisor, label in _UNITS:
        if largest_s >= 2 * divisor:
            return divisor, label
    return 1.0, "seconds"


def write_lag_png(
    history: LagHistory,
    path: str,
    title: str,
    *,
    size_px: Tuple[int, int] = DEFAULT_SIZE_PX,
    retention_s: Optional[float] = None,
    guard_lags_s: Sequence[Tuple[str, float]] = (),
) -> None:
    """Draw ``history`` (tunnel lag bold, stream channels thin) to ``path``.

    Args:
      title: the chart title, e.g. the tunnel and table names.
      size_px: (width, height) of the PNG in pixels.
      retention_s: shown in the subtitle when known.
      guard_lags_s: (label, lag) lines to mark, e.g. the lag at which
        ``--warn-left`` trips; drawn only when near the plotted range.

    Raises:
      ImportError: matplotlib is missing (with the install command).
      ValueError: the history is empty or the size is not positive.
      OSError: the file cannot be written.
    """
    width, height = size_px
    if width < 200 or height < 150:
        raise ValueError(f"size_px must be at least 200x150, got {width}x{height}")
    points = history.points()
    if not points:
        raise ValueError("no lag measured yet: nothing to plot")
    Figure, FigureCanvasAgg, mdates = require_matplotlib()
    times = [datetime.datetime.fromtimestamp(p.now_ns / 1e9, tz=datetime.timezone.utc) for p in points]
    known = [lag for p in points for lag in [p.tunnel_lag_s, *p.channel_lags_s.values()] if lag is not None]
    top = max(known, default=0.0)
    guards = [(label, lag) for label, lag in guard_lags_s if 0 <= lag <= max(top * 1.5, 1.0)]
    ceiling = max([top] + [lag for _, lag in guards])
    divisor, unit = _unit(ceiling)

    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for index, channel_id in enumerate(history.channel_ids()):
        lags = [p.channel_lags_s.get(channel_id) for p in points]
        axes.plot(times, [float("nan") if lag is None else lag / divisor for lag in lags],
                  linewidth=1.0, alpha=0.8, marker="." if len(points) < 3 else None,
                  label=channel_id if index < _MAX_LEGEND_CHANNELS else None)
    axes.plot(times, [float("nan") if p.tunnel_lag_s is None else p.tunnel_lag_s / divisor for p in points],
              color="#d62728", linewidth=2.5, marker="o" if len(points) < 3 else None, label="tunnel lag")
    for label, lag in guards:
        axes.axhline(lag / divisor, color="#7f7f7f", linestyle="--", linewidth=1.0)
        axes.annotate(label, (times[0], lag / divisor), fontsize=8, color="#555555",
                      xytext=(4, 3), textcoords="offset points")
    axes.set_ylim(bottom=0, top=ceiling / divisor * 1.1 if ceiling > 0 else 1.0)
    axes.set_xlabel("service time (UTC)")
    axes.set_ylabel(f"lag ({unit})")
    subtitle = f"{len(points)} samples, latest tunnel lag {format_duration(points[-1].tunnel_lag_s)}"
    if retention_s:
        subtitle += f", stream retention {format_duration(retention_s)}"
    axes.set_title(f"{title}\n{subtitle}", fontsize=11)
    locator = mdates.AutoDateLocator(tz=datetime.timezone.utc)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=datetime.timezone.utc))
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.savefig(path, format="png", dpi=_DPI)
