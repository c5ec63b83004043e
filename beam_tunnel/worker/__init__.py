"""Reading a tunnel outside Beam, and the pure pieces the Beam source shares.

Status: experimental; the API may change.

Threaded consumer:

* :class:`TunnelWorker` with :class:`WorkerConfig`; user code implements
  :class:`ChannelProcessor` (or passes a callable) and receives a
  :class:`ChannelContext` with each batch.

Pure (no I/O, no threads; state is plain data), shared with the Beam source:

* :mod:`beam_tunnel.worker.channels`: the channel state machine.
* :mod:`beam_tunnel.worker.heartbeat`: heartbeat schedule and lease expiry.
* :mod:`beam_tunnel.worker.checkpoints`: the checkpoint sequence rule.
* :mod:`beam_tunnel.worker.polling`: adaptive polling of one channel.
"""

from beam_tunnel.worker.channels import ChannelState, MergePlan, Progress
from beam_tunnel.worker.checkpoints import CheckpointLedger, CheckpointRequest
from beam_tunnel.worker.config import WorkerConfig
from beam_tunnel.worker.heartbeat import HeartbeatTimer
from beam_tunnel.worker.polling import PollBackoff
from beam_tunnel.worker.processor import ChannelContext, ChannelProcessor
from beam_tunnel.worker.worker import TunnelWorker

__all__ = [
    "TunnelWorker",
    "WorkerConfig",
    "ChannelProcessor",
    "ChannelContext",
    "ChannelState",
    "MergePlan",
    "Progress",
    "CheckpointLedger",
    "CheckpointRequest",
    "HeartbeatTimer",
    "PollBackoff",
]
