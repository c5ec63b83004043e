"""What user code implements to receive records from a TunnelWorker.

The Java SDK's IChannelProcessor (``process`` per batch, ``shutdown`` per
channel), made pythonic: subclass :class:`ChannelProcessor`, or pass any
callable ``process(records, context)``.

Delivery contract:

* Per channel, batches arrive in order, one at a time, on that channel's
  own thread; different channels run concurrently (bounded by
  ``max_channel_parallelism``), so shared state needs a lock.
* A batch is acknowledged when ``process`` returns. The worker checkpoints
  acknowledged positions every ``checkpoint_interval_s`` and when a channel
  finishes or is handed back; a checkpoint never covers a batch whose
  ``process`` has not returned.
* At-least-once: after a crash, a lost lease or a channel moving to another
  client, reading resumes from the last checkpoint, so batches acknowledged
  after it are delivered again (at most ``checkpoint_interval_s`` worth).
  A graceful :meth:`TunnelWorker.stop` checkpoints first: no duplicates.
* If ``process`` raises, the batch is not acknowledged: the channel is
  handed back to the service (CLOSE), which opens it again, here or on
  another client, from the last checkpoint.
* Batches without records (normal for an idle stream channel) are not
  passed to ``process``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Optional

from beam_tunnel.errors import ConfigError

__all__ = ["ChannelContext", "ChannelProcessor"]


@dataclasses.dataclass(frozen=True)
class ChannelContext:
    """Where a batch comes from.

    Attributes:
      tunnel_id: the tunnel.
      client_id: this worker's current client id (it changes after a
        reconnect).
      channel_id: the channel the records belong to.
      token: the token the batch was read from (None in ``shutdown``).
      next_token: the token after the batch, ``"finished"`` for the last
        one (None in ``shutdown``).
    """

    tunnel_id: str
    client_id: str
    channel_id: str
    token: Optional[str] = None
    next_token: Optional[str] = None


class ChannelProcessor:
    """Base class for the code that consumes a tunnel's records."""

    def process(self, records: List[Any], context: ChannelContext) -> None:
        """Handle one batch of :class:`beam_tunnel.records.ChangeRecord`.

        Returning acknowledges the batch; raising hands the channel back
        (see the module docstring).
        """
        raise NotImplementedError

    def shutdown(self, context: ChannelContext) -> None:
        """Called once when this worker stops reading a channel (finished,
        handed back, revoked or the worker stopping). Default: nothing."""


class _CallableProcessor(ChannelProcessor):
    """Adapts a plain ``process(records, context)`` callable."""

    def __init__(self, func: Callable[[List[Any], ChannelContext], Any]) -> None:
        self._func = func

    def process(self, records, context) -> None:
        self._func(records, context)

    def __repr__(self) -> str:
        return f"_CallableProcessor({self._func!r})"


def _as_processor(processor) -> ChannelProcessor:
    if isinstance(processor, ChannelProcessor):
        return processor
    if callable(getattr(processor, "process", None)):
        return processor  # duck-typed: process() and maybe shutdown()
    if callable(processor):
        return _CallableProcessor(processor)
    raise ConfigError(
        f"processor must be a ChannelProcessor, an object with process(records, context), "
        f"or a callable(records, context), got {processor!r}"
    )
