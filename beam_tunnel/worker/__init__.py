"""Reading a tunnel outside Beam, and the pure pieces the Beam source shares.

Pure (no I/O, no threads; state is plain data):

* :mod:`beam_tunnel.worker.channels`: the channel state machine.
* :mod:`beam_tunnel.worker.heartbeat`: heartbeat schedule and lease expiry.
* :mod:`beam_tunnel.worker.checkpoints`: the checkpoint sequence rule.
* :mod:`beam_tunnel.worker.polling`: adaptive polling of one channel.
"""

from beam_tunnel.worker.channels import ChannelState, MergePlan, Progress
from beam_tunnel.worker.checkpoints import CheckpointLedger, CheckpointRequest
from beam_tunnel.worker.heartbeat import HeartbeatTimer
from beam_tunnel.worker.polling import PollBackoff

__all__ = [
    "ChannelState",
    "MergePlan",
    "Progress",
    "CheckpointLedger",
    "CheckpointRequest",
    "HeartbeatTimer",
    "PollBackoff",
]
