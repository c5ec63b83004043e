"""Which channels a tunnel has: built from the table's partitions.

* Full data: one ``BaseData_<partition id>`` channel per partition open when
  the tunnel is created (together they tile the key space), reading that
  key range; the ranges stay fixed even if partitions split later.
* Stream: one channel per partition, id = partition id, added as partitions
  appear (splits and merges add children, whose channels wait for their
  parents).
"""

from __future__ import annotations

from typing import Dict, Optional

from beam_tunnel.protocol import plainbuffer
from beam_tunnel.protocol.rows import INF_MIN, SequenceInfo

from .reads import initial_base_token, initial_stream_token, start_position, starts_at_creation
from .tunnel_store import BASE, STREAM, WAIT, ChannelRecord, TunnelState

__all__ = ["add_base_channels", "add_stream_channels"]


def add_base_channels(state: TunnelState, tables, table_info) -> None:
    """A full-data channel per open partition of the table."""
    lowest = tuple((column.name, INF_MIN) for column in table_info.primary_key)
    for partition in tables.list_partitions(table_info.name):
        if partition.closed:
            continue
        start = plainbuffer.encode_primary_key(lowest if partition.start is INF_MIN else partition.start)
        end = plainbuffer.encode_primary_key(partition.end) if isinstance(partition.end, tuple) else None
        channel_id = f"BaseData_{partition.partition_id}"
        state.channels[channel_id] = ChannelRecord(
            state.tunnel.tunnel_id, channel_id, BASE, partition.partition_id, (), start, end,
            WAIT, 0, None, initial_base_token(start), 0, 0, False,
        )


def add_stream_channels(state: TunnelState, tables, streams, at_creation: bool = False,
                        creation_last: Optional[Dict[str, Optional[SequenceInfo]]] = None) -> None:
    """A stream channel for every partition that has none yet.

    At creation, a LATEST (or BaseAndStream) channel starts after the last
    record already in its log: write times may run a few µs ahead of the
    clock, so the creation time alone would let earlier writes in. A closed
    partition with nothing after the start gets no channel at all (it has
    nothing for this tunnel: typically it closed before the tunnel existed),
    and its children do not wait for it (``channels.is_blocked``).

    ``creation_last`` (partition id -> last log position) comes with the
    full-data snapshot of a BaseAndStream tunnel: the stream starts exactly
    after what the snapshot holds.
    """
    tunnel = state.tunnel
    for partition in tables.list_partitions(tunnel.table_name):
        if partition.partition_id in state.channels:
            continue
        start: Optional[SequenceInfo] = start_position(tunnel, partition.epoch)
        if creation_last is not None and partition.partition_id in creation_last:
            last = creation_last[partition.partition_id]
        else:
            _, last = streams.bounds(tunnel.table_name, partition.partition_id)
        if at_creation and starts_at_creation(tunnel) and last is not None and last > start:
            start = last
        if partition.closed and (last is None or (start is not None and last <= start)):
            continue
        token = initial_stream_token(tunnel, partition.partition_id, start)
        state.channels[partition.partition_id] = ChannelRecord(
            tunnel.tunnel_id, partition.partition_id, STREAM, partition.partition_id,
            tuple(partition.parent_ids), None, None, WAIT, 0, None, token, 0, 0, False,
        )
