"""Settings of a :class:`~beam_tunnel.worker.TunnelWorker`, named after the
official SDKs' knobs where they match (TunnelWorkerConfig in Java, the
worker config in Go), with the same defaults."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

from beam_tunnel.errors import ConfigError
from beam_tunnel.worker._checks import int_at_least, positive_number
from beam_tunnel.worker.heartbeat import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_HEARTBEAT_TIMEOUT_S, HeartbeatTimer
from beam_tunnel.worker.polling import PollBackoff

__all__ = ["WorkerConfig"]

_LOGGER = logging.getLogger(__name__)

# The Go SDK checkpoints every 10 s (Java every 5 s): records processed since
# the last checkpoint are redelivered after a crash, so this bounds the
# duplicates, at one Checkpoint call per channel per interval.
_DEFAULT_CHECKPOINT_INTERVAL_S = 10.0

# Batches a channel's fetch loop may read ahead of its callback. Two keep
# the callback busy while the next read is in flight; the bound caps memory
# at (this + 2) batches per channel.
_DEFAULT_MAX_QUEUED_BATCHES = 2

# The Java SDK's maxRetryIntervalInMillis default: an idle stream channel is
# polled at least this often, which bounds the latency of its next record.
_DEFAULT_MAX_POLL_INTERVAL_S = 2.0

# The Go daemon sleeps a random time up to 10 s before reconnecting after a
# lost lease, so clients that lost it together do not return in a herd.
_DEFAULT_RECONNECT_MAX_DELAY_S = 10.0

# The Go SDK's first backoff step for an idle channel.
_POLL_INITIAL_S = 0.02


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """How a :class:`TunnelWorker` heartbeats, reads and checkpoints.

    Attributes:
      heartbeat_interval_s: seconds between heartbeats. Default 30, as the
        SDKs.
      heartbeat_timeout_s: seconds without an answered heartbeat after which
        the service gives this client's channels to others (sent as
        ClientConfig.timeout, rounded up to whole seconds) and this worker
        drops them and reconnects. Must exceed the interval; at least three
        intervals are advised so one lost heartbeat does not cost the lease.
        Default 300, as the SDKs.
      checkpoint_interval_s: seconds between checkpoints of a channel that
        made progress; also bounds the records redelivered after a crash.
        Default 10, as the Go SDK.
      max_channel_parallelism: most channels whose callback runs at once;
        None (default) for no limit, as the SDKs.
      client_tag: label the service folds into the client id; None (default)
        for this machine's host name, as the Go SDK.
      max_queued_batches: batches each channel may read ahead of its
        callback (memory bound per channel). Default 2.
      max_poll_interval_s: longest wait between reads of an idle stream
        channel. Default 2, as the Java SDK.
      reconnect_max_delay_s: a reconnect after a lost lease waits a random
        time up to this. Default 10, as the Go SDK.
    """

    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    checkpoint_interval_s: float = _DEFAULT_CHECKPOINT_INTERVAL_S
    max_channel_parallelism: Optional[int] = None
    client_tag: Optional[str] = None
    max_queued_batches: int = _DEFAULT_MAX_QUEUED_BATCHES
    max_poll_interval_s: float = _DEFAULT_MAX_POLL_INTERVAL_S
    reconnect_max_delay_s: float = _DEFAULT_RECONNECT_MAX_DELAY_S

    def __post_init__(self) -> None:
        timer = self.heartbeat_timer()  # validates interval and timeout
        object.__setattr__(self, "heartbeat_interval_s", timer.interval_s)
        object.__setattr__(self, "heartbeat_timeout_s", timer.timeout_s)
        object.__setattr__(
            self, "checkpoint_interval_s", positive_number("checkpoint_interval_s", self.checkpoint_interval_s)
        )
        int_at_least("max_channel_parallelism", self.max_channel_parallelism, 1, allow_none=True)
        int_at_least("max_queued_batches", self.max_queued_batches, 1)
        object.__setattr__(
            self, "max_poll_interval_s", positive_number("max_poll_interval_s", self.max_poll_interval_s)
        )
        object.__setattr__(
            self,
            "reconnect_max_delay_s",
            positive_number("reconnect_max_delay_s", self.reconnect_max_delay_s, allow_zero=True),
        )
        if self.client_tag is not None and not isinstance(self.client_tag, str):
            raise ConfigError(f"client_tag must be a string or None, got {self.client_tag!r}")
        if timer.timeout_s < 3 * timer.interval_s:
            _LOGGER.warning(
                "[worker] heartbeat_timeout_s=%s is under three heartbeat intervals (%s s): "
                "a single failed heartbeat may cost the lease",
                timer.timeout_s,
                timer.interval_s,
            )

    def heartbeat_timer(self) -> HeartbeatTimer:
        """A fresh :class:`HeartbeatTimer` with these settings."""
        return HeartbeatTimer(interval_s=self.heartbeat_interval_s, timeout_s=self.heartbeat_timeout_s)

    def poll_backoff(self) -> PollBackoff:
        """The idle-channel backoff with these settings."""
        return PollBackoff(initial_s=min(_POLL_INITIAL_S, self.max_poll_interval_s), max_s=self.max_poll_interval_s)
