"""Settings of one emulator instance, validated at construction."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping, Optional

from .clock import Clock
from .faults import FaultSettings

__all__ = ["EmulatorConfig", "DEFAULT_INSTANCE", "DEFAULT_ACCESS_KEY_ID", "DEFAULT_ACCESS_KEY_SECRET"]

DEFAULT_INSTANCE = "beam-tunnel"
# A fixed, documented pair: the emulator is a local tool, and a fixed pair lets
# the demo and the docs work without copying a generated secret around.
DEFAULT_ACCESS_KEY_ID = "emulator-access-key-id"
DEFAULT_ACCESS_KEY_SECRET = "emulator-access-key-secret"

_MIB = 1024 * 1024
# Instance names on the real service: a letter, then letters, digits and
# hyphens, 3-16 characters. The emulator is more lenient on length.
_INSTANCE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")


def _positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything one emulator instance needs to know.

    Args:
      instance_name: the instance the emulator pretends to be; requests for
        another instance get ``OTSAuthFailed``. Default ``"beam-tunnel"``.
      access_keys: AccessKey id -> secret pairs that may sign requests.
        Default: one pair, :data:`DEFAULT_ACCESS_KEY_ID` /
        :data:`DEFAULT_ACCESS_KEY_SECRET`.
      data_dir: directory holding the SQLite file; None means "a temporary
        directory" (the server creates and removes it).
      clock: the time source (default: wall clock).
      max_body_bytes: largest accepted request body, in bytes (default 5 MiB).
      max_date_skew_s: largest accepted difference between a request's
        ``x-ots-date`` and the emulator clock, in seconds (default 900, as
        the real service); None disables the check.
      range_max_rows: most rows one GetRange answer carries (default 5000).
      range_max_bytes: most row bytes one GetRange answer carries (default
        4 MiB); a longer range pages through next_start_primary_key.
      read_max_records: most records one ReadRecords answer carries
        (default 1000).
      read_max_bytes: most record bytes one ReadRecords answer carries
        (default 4 MiB).
      faults: initial fault settings (default: none).
      tunnel_permissive: accept data-plane calls (ReadRecords, GetCheckpoint,
        Checkpoint) from client ids that hold no lease, as EMR's Spark source
        relies on (default False: strict).
    """

    instance_name: str = DEFAULT_INSTANCE
    access_keys: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {DEFAULT_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_SECRET}
    )
    data_dir: Optional[str] = None
    clock: Clock = dataclasses.field(default_factory=Clock)
    max_body_bytes: int = 5 * _MIB
    max_date_skew_s: Optional[float] = 900.0
    range_max_rows: int = 5000
    range_max_bytes: int = 4 * _MIB
    read_max_records: int = 1000
    read_max_bytes: int = 4 * _MIB
    faults: FaultSettings = dataclasses.field(default_factory=FaultSettings)
    tunnel_permissive: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.instance_name, str) or not _INSTANCE_RE.match(self.instance_name):
            raise ValueError(
                "instance_name must start with a letter and hold only letters, digits "
                f"and hyphens (at most 64), got {self.instance_name!r}"
            )
        if not isinstance(self.access_keys, Mapping) or not self.access_keys:
            raise ValueError(f"access_keys must be a non-empty mapping id -> secret, got {self.access_keys!r}")
        for key_id, secret in self.access_keys.items():
            if not isinstance(key_id, str) or not key_id or key_id.strip() != key_id:
                raise ValueError(f"AccessKey id must be a non-empty string without spaces, got {key_id!r}")
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"AccessKey secret for {key_id!r} must be a non-empty string")
        # A private copy, so later changes to the caller's dict do not leak in.
        object.__setattr__(self, "access_keys", dict(self.access_keys))
        if self.data_dir is not None:
            if not isinstance(self.data_dir, (str, os.PathLike)):
                raise ValueError(f"data_dir must be a path or None, got {self.data_dir!r}")
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))
        if not isinstance(self.clock, Clock):
            raise ValueError(f"clock must be a beam_tunnel.emulator.clock.Clock, got {self.clock!r}")
        for name in ("max_body_bytes", "range_max_rows", "range_max_bytes", "read_max_records", "read_max_bytes"):
            _positive_int(name, getattr(self, name))
        skew = self.max_date_skew_s
        if skew is not None and (not isinstance(skew, (int, float)) or isinstance(skew, bool) or skew <= 0):
            raise ValueError(f"max_date_skew_s must be a positive number of seconds or None, got {skew!r}")
        if not isinstance(self.tunnel_permissive, bool):
            raise ValueError(f"tunnel_permissive must be a bool, got {self.tunnel_permissive!r}")
        if not isinstance(self.faults, FaultSettings):
            raise ValueError(f"faults must be a FaultSettings, got {self.faults!r}")
