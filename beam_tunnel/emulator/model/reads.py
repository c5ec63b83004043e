"""ReadRecords: serve a channel's records after a token, and initial tokens.

Base channels scan their key range with ``TableBackend.scan``, in the
snapshot taken when the tunnel was created (``snapshots.py``); stream
channels read their partition's log with ``StreamLog.read``. Both hand back
ready-made PlainBuffer records: nothing is decoded on the read path.

Stream rules:

* Records are returned strictly after the iterator's position; a token with
  no position starts at the first record still in the log.
* Expired data: a position older than the retention floor resumes from the
  earliest record still kept; the records in between are lost, as on the
  real service ("unconsumed data older than retention is skipped").
* ``finished`` once the channel has passed the tunnel's endOffset (a record
  at or after it is never returned), or once a closed (split or merged)
  partition's sealed log has been read to its end.
* A caught-up channel gets an empty batch and its own token back.
* ``may_more_record`` is True exactly when more records are already in the
  log behind the batch (base: when the range is not exhausted).
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Sequence

from beam_tunnel.errors import PlainBufferError
from beam_tunnel.protocol import plainbuffer, tunnel_pb2
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, PrimaryKey, SequenceInfo
from beam_tunnel.protocol.tokens import (
    FINISHED,
    StreamIterator,
    TokenContent,
    TokenError,
    decode_stream_iterator,
    decode_token,
    encode_stream_iterator,
    encode_token,
)

from .. import errors
from .tunnel_store import BASE, BASE_AND_STREAM, ChannelRecord, TunnelRecord

__all__ = [
    "ReadResult",
    "BaseRecord",
    "MAX_ROW_INDEX",
    "start_position",
    "starts_at_creation",
    "initial_stream_token",
    "initial_base_token",
    "key_from_bytes",
    "ChannelToken",
    "parse_channel_token",
    "Reader",
]

MAX_ROW_INDEX = 0xFFFFFFFF
"""Row index of a start position: "after every record of the previous µs"."""

_PUT_ROW = tunnel_pb2.PUT_ROW


class BaseRecord(NamedTuple):
    """A full-data record, shaped like a stream log entry for the wire layer."""

    record: bytes
    action: int = _PUT_ROW
    origin: Optional[bytes] = None


class ReadResult(NamedTuple):
    """One ReadRecords answer.

    Attributes:
      records: objects with ``action``, ``record`` and ``origin`` attributes.
      next_token: the token to read from next, or ``"finished"``.
      may_more: True when more records are waiting right now.
      total_count: records read through the channel including this batch.
    """

    records: Sequence
    next_token: str
    may_more: bool
    total_count: int


def start_position(tunnel: TunnelRecord, epoch: int) -> Optional[SequenceInfo]:
    """The iterator position a stream channel of ``tunnel`` starts after.

    BaseAndStream: the tunnel's creation time. Stream: startOffset when set,
    else EARLIEST (None: the first record kept) or LATEST (creation time).
    """
    if tunnel.tunnel_type != BASE_AND_STREAM and tunnel.start_ns:
        start_us = -(-tunnel.start_ns // 1000)  # first µs at or after the offset
    elif tunnel.tunnel_type != BASE_AND_STREAM and tunnel.start_flag == tunnel_pb2.EARLIEST:
        return None
    else:
        start_us = tunnel.create_us
    return SequenceInfo(epoch, start_us - 1, MAX_ROW_INDEX)


def starts_at_creation(tunnel: TunnelRecord) -> bool:
    """True when the tunnel's stream part starts when the tunnel was created
    (LATEST, or BaseAndStream)."""
    return start_position(tunnel, 0) is not None and (
        tunnel.tunnel_type == BASE_AND_STREAM or not tunnel.start_ns
    )


def initial_stream_token(tunnel: TunnelRecord, partition_id: str, position: Optional[SequenceInfo]) -> str:
    """The token a never-checkpointed stream channel starts from: after
    ``position`` (None: the first record kept)."""
    iterator = StreamIterator(tunnel.stream_id, partition_id, position)
    return encode_token(TokenContent(iterator=encode_stream_iterator(iterator)))


def initial_base_token(range_start: bytes) -> str:
    """The token a never-checkpointed base channel starts from."""
    return encode_token(TokenContent(primary_key=range_start))


def key_from_bytes(data: Optional[bytes], open_end) -> object:
    """A scan bound from stored PlainBuffer key bytes; ``open_end`` (INF_MIN or
    INF_MAX) for None or an all-INF key."""
    if data is None:
        return open_end
    key: PrimaryKey = plainbuffer.decode_row(data).primary_key
    if key and all(value is open_end for _, value in key):
        return open_end
    return key


# A record count no token was ever issued with: adding batches to it would
# overflow the int64 the service stores and sends.
_MAX_TOKEN_COUNT = 1 << 62


class ChannelToken(NamedTuple):
    """A token checked against its channel (see :func:`parse_channel_token`).

    Attributes:
      total_count: records read through the channel before the token.
      start: base channels: the scan bound to read from; else None.
      iterator: stream channels: the decoded stream iterator; else None.
    """

    total_count: int
    start: object
    iterator: Optional[StreamIterator]


def parse_channel_token(tunnel: TunnelRecord, channel: ChannelRecord, token: str) -> ChannelToken:
    """Decode a token (not ``finished``) that ReadRecords or Checkpoint got for
    ``channel`` and check that it belongs to it.

    Raises:
      TokenError: naming the problem; callers say which call it was.
    """
    content = decode_token(token)
    if not 0 <= content.total_count <= _MAX_TOKEN_COUNT:
        raise TokenError(f"its record count {content.total_count} is out of range 0..{_MAX_TOKEN_COUNT}")
    if channel.kind == BASE:
        if content.primary_key is None:
            raise TokenError("a full-data channel needs a primary-key token, got a stream token")
        try:
            start = key_from_bytes(content.primary_key, INF_MIN)
        except PlainBufferError as err:
            raise TokenError(f"its primary key does not decode: {err.message}") from None
        return ChannelToken(content.total_count, start, None)
    if content.iterator is None:
        raise TokenError("a stream channel needs a stream token, got a primary-key token")
    iterator = decode_stream_iterator(content.iterator)
    if iterator.shard_id != channel.partition_id or iterator.stream_id != tunnel.stream_id:
        raise TokenError(
            f"it belongs to shard {iterator.shard_id!r} of stream {iterator.stream_id!r}, not shard "
            f"{channel.partition_id!r} of stream {tunnel.stream_id!r}"
        )
    return ChannelToken(content.total_count, None, iterator)


class Reader:
    """Serves ReadRecords for one emulator.

    Args:
      tables: the TableBackend (``scan``).
      streams: the StreamLog (``read``, ``bounds``).
      storage: the Storage; its write lock orders the endOffset check after
        every write that already took a timestamp.
      now_us: the clock.
      max_records, max_bytes: batch limits.
    """

    def __init__(self, tables, streams, storage, now_us: Callable[[], int], max_records: int, max_bytes: int) -> None:
        self._tables = tables
        self._streams = streams
        self._storage = storage
        self._now_us = now_us
        self._max_records = max_records
        self._max_bytes = max_bytes

    def read(self, tunnel: TunnelRecord, channel: ChannelRecord, token: str) -> ReadResult:
        """Records of ``channel`` after ``token``.

        Raises:
          ServiceError: OTSParameterInvalid for a token that does not parse
            or does not belong to this channel.
        """
        if token == FINISHED:
            return ReadResult((), FINISHED, False, channel.count)
        try:
            parsed = parse_channel_token(tunnel, channel, token)
        except TokenError as err:
            raise errors.parameter_invalid(
                f"token for channel {channel.channel_id!r} is invalid: {err.message}"
            ) from None
        if channel.kind == BASE:
            return self._read_base(tunnel, channel, parsed)
        return self._read_stream(tunnel, channel, token, parsed)

    def _read_base(self, tunnel: TunnelRecord, channel: ChannelRecord, parsed: ChannelToken) -> ReadResult:
        end = key_from_bytes(channel.range_end, INF_MAX)
        # As of the tunnel's creation (see snapshots.py; the snapshot id is the tunnel id).
        records, next_key = self._tables.scan(
            tunnel.table_name, parsed.start, end, self._max_records, self._max_bytes, snapshot=tunnel.tunnel_id
        )
        total = parsed.total_count + len(records)
        batch = [BaseRecord(record) for record in records]
        if next_key is None:
            return ReadResult(batch, FINISHED, False, total)
        key_bytes = plainbuffer.encode_primary_key(next_key)
        return ReadResult(batch, encode_token(TokenContent(primary_key=key_bytes, total_count=total)), True, total)

    def forget_base_range(self, tunnel: TunnelRecord, channel: ChannelRecord) -> None:
        """A full-data channel is finished: its rows of the snapshot are no
        longer needed."""
        self._tables.drop_snapshot(
            tunnel.table_name, tunnel.tunnel_id,
            key_from_bytes(channel.range_start, INF_MIN), key_from_bytes(channel.range_end, INF_MAX),
        )

    def _read_stream(
        self,
        tunnel: TunnelRecord,
        channel: ChannelRecord,
        token: str,
        parsed: ChannelToken,
    ) -> ReadResult:
        table, shard = tunnel.table_name, channel.partition_id
        iterator = parsed.iterator
        after = iterator.position
        # The log hides records older than retention, so a position before
        # the floor resumes from the earliest record still kept.
        entries: List = self._streams.read(table, shard, after, self._max_records, self._max_bytes)
        finished = False
        end_us = -(-tunnel.end_ns // 1000) if tunnel.end_ns else None
        if end_us is not None and entries and entries[-1].sequence.timestamp >= end_us:
            entries = [e for e in entries if e.sequence.timestamp < end_us]
            finished = True
        position = entries[-1].sequence if entries else after
        _, last = self._streams.bounds(table, shard)
        caught_up = last is None or (position is not None and position >= last)
        if not finished and caught_up:
            finished = self._stream_ended(tunnel, channel, position, end_us)
        total = parsed.total_count + len(entries)
        if finished:
            return ReadResult(entries, FINISHED, False, total)
        if position == iterator.position:
            next_token = token
        else:
            moved = StreamIterator(iterator.stream_id, iterator.shard_id, position)
            next_token = encode_token(TokenContent(iterator=encode_stream_iterator(moved), total_count=total))
        return ReadResult(entries, next_token, not caught_up, total)

    def _stream_ended(
        self, tunnel: TunnelRecord, channel: ChannelRecord, position: Optional[SequenceInfo], end_us: Optional[int]
    ) -> bool:
        """True when a reader caught up at ``position`` will never see more:
        the partition is closed (its log is sealed), or the clock has passed
        the end offset and no record before it is still being written."""
        table, shard = tunnel.table_name, channel.partition_id
        if self._partition_closed(table, shard):
            # Sealing happens under the write lock after every write to the
            # partition committed, so bounds read now are final.
            _, last = self._streams.bounds(table, shard)
            return last is None or (position is not None and position >= last)
        if end_us is None or self._now_us() < end_us:
            return False
        # Under the write lock no write is half-done: a record stamped before
        # the end offset is either in the log now or was never written.
        with self._storage.transaction():
            _, last = self._streams.bounds(table, shard)
            return last is None or (position is not None and position >= last)

    def _partition_closed(self, table: str, partition_id: str) -> bool:
        for partition in self._tables.list_partitions(table):
            if partition.partition_id == partition_id:
                return partition.closed
        return True  # a partition that no longer exists has nothing more to give
