"""Compare a synced target with its source, row by row and column by column."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Tuple

__all__ = ["Comparison", "compare"]

_SHOWN = 20


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    return type(left) is type(right) and left == right


@dataclasses.dataclass
class Comparison:
    """What differs between a source and a target (both key -> columns)."""

    source_rows: int
    target_rows: int
    missing: List[tuple]  # in the source, not in the target
    extra: List[tuple]  # in the target, not in the source
    different: List[Tuple[tuple, str, Any, Any]]  # key, column, source value, target value

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def lines(self, key_names) -> List[str]:
        """The verdict first, then up to 20 differences of each kind."""
        if self.equal:
            return [f"target equals source: {self.source_rows} rows"]
        def key_text(key):
            return ", ".join(f"{name}={value!r}" for name, value in zip(key_names, key))
        out = [f"target differs from source: {len(self.missing)} rows missing, {len(self.extra)} extra, "
               f"{len(self.different)} values different ({self.source_rows} source rows, "
               f"{self.target_rows} target rows)"]
        out += [f"  missing in target: {key_text(key)}" for key in self.missing[:_SHOWN]]
        out += [f"  not in source:     {key_text(key)}" for key in self.extra[:_SHOWN]]
        out += [f"  {key_text(key)}: column {column!r} is {source!r} in the source, {target!r} in the target"
                for key, column, source, target in self.different[:_SHOWN]]
        return out


def compare(source: Mapping[tuple, Dict[str, Any]], target: Mapping[tuple, Dict[str, Any]]) -> Comparison:
    """Compare two ``key -> {column: value}`` maps (absent columns are absent,
    never None)."""
    missing = sorted((key for key in source if key not in target), key=repr)
    extra = sorted((key for key in target if key not in source), key=repr)
    different = []
    for key in sorted((key for key in source if key in target), key=repr):
        want, got = source[key], target[key]
        for column in sorted(set(want) | set(got)):
            if column not in want or column not in got or not _same(want[column], got[column]):
                different.append((key, column, want.get(column), got.get(column)))
    return Comparison(len(source), len(target), missing, extra, different)
