"""The checkpoint sequence rule of one channel: pure, no I/O.

The service stores one ``(token, sequence_number)`` per channel and accepts
a Checkpoint only with ``sequence_number = stored + 1``; that fences a
previous owner that still believes it holds the channel. The SDKs' rule,
kept here:

* after GetCheckpoint, the next Checkpoint sends ``stored + 1``;
* after each accepted Checkpoint, the next sends one more;
* after ``OTSSequenceNumberNotMatch``, re-read with GetCheckpoint and send
  the service's ``stored + 1`` next time (the failed commit is not retried
  at once: the next periodic commit carries a newer token anyway);
* never move the checkpoint backwards: each token has a *position* the
  caller assigns (a counter that grows with every batch read), and a commit
  at or behind the last committed position is dropped as stale.

Usage::

    ledger = CheckpointLedger.from_stored(token, sequence_number)
    request = ledger.request(next_token, position)
    if request is not None:
        client.checkpoint(..., request.token, request.sequence_number)
        ledger = ledger.committed(request)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker._checks import int_at_least

__all__ = ["CheckpointRequest", "CheckpointLedger"]


class CheckpointRequest(NamedTuple):
    """One Checkpoint call to make.

    Attributes:
      token: the token to store (where a new owner resumes reading).
      sequence_number: the sequence number the call must carry.
      position: the caller's position of ``token``.
    """

    token: str
    sequence_number: int
    position: int


@dataclasses.dataclass(frozen=True)
class CheckpointLedger:
    """What the service stores for one channel, as far as this client knows.

    Attributes:
      token: the last token known to be stored.
      next_sequence: the sequence number the next Checkpoint sends.
      position: the caller's position of ``token`` (0 for the checkpoint read
        when the channel was opened).
    """

    token: str
    next_sequence: int
    position: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.token, str):
            raise ConfigError(f"CheckpointLedger.token must be a string, got {self.token!r}")
        int_at_least("CheckpointLedger.next_sequence", self.next_sequence, 0)
        int_at_least("CheckpointLedger.position", self.position, 0)

    @classmethod
    def from_stored(cls, token: str, sequence_number: int) -> "CheckpointLedger":
        """The ledger for a checkpoint just read with GetCheckpoint."""
        int_at_least("stored sequence_number", sequence_number, 0)
        return cls(token=token, next_sequence=sequence_number + 1, position=0)

    def request(self, token: str, position: int) -> Optional[CheckpointRequest]:
        """The Checkpoint to send for ``token`` at ``position``, or None.

        None when there is nothing new to store: ``position`` is not past the
        last committed one (a stale or repeated commit), or ``token`` is
        already the stored token.
        """
        int_at_least("checkpoint position", position, 0)
        if position <= self.position or token == self.token:
            return None
        return CheckpointRequest(token, self.next_sequence, position)

    def committed(self, request: CheckpointRequest) -> "CheckpointLedger":
        """The ledger after the service accepted ``request``.

        A request older than the ledger (answered late, after a newer one) is
        ignored, so the ledger never moves backwards.
        """
        if request.position <= self.position:
            return self
        return CheckpointLedger(
            token=request.token,
            next_sequence=max(self.next_sequence, request.sequence_number + 1),
            position=request.position,
        )

    def resynced(self, stored_token: str, stored_sequence: int) -> "CheckpointLedger":
        """The ledger after OTSSequenceNumberNotMatch and a fresh GetCheckpoint.

        Takes the service's sequence number (the service is the authority on
        it); keeps this client's position, so a stale commit stays stale.
        """
        int_at_least("stored sequence_number", stored_sequence, 0)
        return CheckpointLedger(token=stored_token, next_sequence=stored_sequence + 1, position=self.position)
