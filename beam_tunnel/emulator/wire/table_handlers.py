"""Handlers of the table API: decode the request, call one backend method,
encode the response. Behaviour lives in ``model/tables.py``."""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from beam_tunnel.errors import PlainBufferError, ServiceError
from beam_tunnel.protocol import table_pb2 as pb
from beam_tunnel.protocol.plainbuffer import decode_row, encode_primary_key
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Row

from . import errors
from .routes import API_TABLE, Route
from ..model.tables import DELETE, PUT, UPDATE, PkColumn, ReadOptions, RowChange, StreamSpec, TableInfo

__all__ = ["ROUTES"]

_PK_TYPE_NAMES = {pb.INTEGER: "INTEGER", pb.STRING: "STRING", pb.BINARY: "BINARY"}
_PK_TYPE_ENUMS = {name: number for number, name in _PK_TYPE_NAMES.items()}
_DEFINED_NAMES = {pb.DCT_INTEGER: "INTEGER", pb.DCT_DOUBLE: "DOUBLE", pb.DCT_BOOLEAN: "BOOLEAN",
                  pb.DCT_STRING: "STRING", pb.DCT_BLOB: "BINARY"}
_DEFINED_ENUMS = {name: number for number, name in _DEFINED_NAMES.items()}


# ----------------------------------------------------------------------
# Decoding helpers


_MAX_ZERO_PADDING = 16


def _row(data: bytes, field: str) -> Row:
    try:
        return decode_row(data)
    except PlainBufferError as err:
        error = err
    # The Node SDK sizes key buffers with room to spare for INF_MIN/INF_MAX
    # and sends the row followed by zero bytes; the service reads the one row
    # and ignores them, so do the same.
    padding = len(data) - len(data.rstrip(b"\x00"))
    for cut in range(1, min(padding, _MAX_ZERO_PADDING) + 1):
        try:
            return decode_row(data[:-cut])
        except PlainBufferError:
            continue
    raise errors.parameter_invalid(f"{field} is not a valid PlainBuffer row: {error.message}")


def _no_transaction(request) -> None:
    if request.HasField("transaction_id"):
        raise errors.parameter_invalid("Local transactions (transaction_id) are not supported by the emulator.")


def _condition(condition) -> int:
    if condition.HasField("column_condition") and condition.column_condition:
        raise errors.parameter_invalid("Column conditions are not supported by the emulator; use row existence only.")
    return int(condition.row_existence)


def _return(request) -> Tuple[int, Tuple[str, ...]]:
    if not request.HasField("return_content"):
        return 0, ()
    content = request.return_content
    return int(content.return_type), tuple(content.return_column_names)


def _read_options(request) -> ReadOptions:
    if request.HasField("filter") and request.filter:
        raise errors.parameter_invalid("Filters are not supported by the emulator.")
    max_versions = request.max_versions if request.HasField("max_versions") else None
    time_range = None
    if request.HasField("time_range"):
        rng = request.time_range
        if rng.HasField("specific_time"):
            time_range = (rng.specific_time, rng.specific_time + 1)
        elif rng.HasField("start_time") and rng.HasField("end_time") and 0 <= rng.start_time < rng.end_time:
            time_range = (rng.start_time, rng.end_time)
        else:
            raise errors.parameter_invalid("time_range needs specific_time, or start_time < end_time (ms).")
    if max_versions is None and time_range is None:
        raise errors.parameter_invalid("Either max_versions or time_range must be set.")
    if max_versions is not None and max_versions < 1:
        raise errors.parameter_invalid(f"max_versions must be positive, got {max_versions}.")
    return ReadOptions(
        columns=tuple(dict.fromkeys(request.columns_to_get)),
        max_versions=max_versions,
        time_range=time_range,
        start_column=request.start_column if request.HasField("start_column") else None,
        end_column=request.end_column if request.HasField("end_column") else None,
    )


def _split_value(raw: bytes, index: int):
    """A PartitionRange bound: value type byte + payload (no cell framing),
    as the SDKs write it."""
    try:
        kind = raw[0]
        if kind == 0x09:
            return INF_MIN
        if kind == 0x0A:
            return INF_MAX
        if kind == 0x00 and len(raw) == 9:
            return struct.unpack_from("<q", raw, 1)[0]
        if kind in (0x03, 0x07):
            (size,) = struct.unpack_from("<i", raw, 1)
            if len(raw) == 5 + size:
                payload = raw[5:]
                return payload.decode("utf-8") if kind == 0x03 else payload
    except (IndexError, struct.error, UnicodeDecodeError):
        pass
    raise errors.parameter_invalid(f"partitions[{index}] has an undecodable bound {raw[:64].hex()}.")


def _split_points(ranges) -> List:
    points = []
    previous_end = INF_MIN
    for index, rng in enumerate(ranges):
        begin, end = _split_value(rng.begin, index), _split_value(rng.end, index)
        if begin != previous_end:  # the sentinels compare by identity
            raise errors.parameter_invalid(
                "partitions must be contiguous ranges from INF_MIN to INF_MAX; "
                f"range {index} begins at {begin!r:.100}."
            )
        if index:
            points.append(begin)
        previous_end = end
    if ranges and previous_end is not INF_MAX:
        raise errors.parameter_invalid("The last of the partitions must end at INF_MAX.")
    return points


def _stream_spec(spec) -> StreamSpec:
    return StreamSpec(
        enabled=spec.enable_stream,
        expiration_hours=spec.expiration_time if spec.HasField("expiration_time") else None,
        columns_to_get=tuple(spec.columns_to_get),
    )


# ----------------------------------------------------------------------
# Encoding helpers


def _fill_options(target, info: TableInfo) -> None:
    target.time_to_live = info.time_to_live
    target.max_versions = info.max_versions
    target.deviation_cell_version_in_sec = info.deviation_s
    target.allow_update = info.allow_update


def _fill_throughput(target, info: TableInfo) -> None:
    target.capacity_unit.read = info.reserved_read
    target.capacity_unit.write = info.reserved_write
    target.last_increase_time = info.throughput_changed_s


def _fill_stream(target, info: TableInfo) -> None:
    stream = info.stream
    target.enable_stream = stream.enabled
    if stream.enabled:
        target.stream_id = stream.stream_id
        target.expiration_time = stream.expiration_hours
        target.last_enable_time = stream.last_enable_us
        target.column_to_get.extend(stream.columns_to_get)


def _consumed(target, read: int = 0, write: int = 0) -> None:
    target.capacity_unit.read = read
    target.capacity_unit.write = write


# ----------------------------------------------------------------------
# Table operations


def create_table(ctx, request: pb.CreateTableRequest) -> pb.CreateTableResponse:
    meta = request.table_meta
    options = request.table_options if request.HasField("table_options") else pb.TableOptions()
    ctx.backend.tables.create_table(
        meta.table_name,
        [PkColumn(c.name, _PK_TYPE_NAMES.get(c.type, str(c.type)), c.HasField("option")) for c in meta.primary_key],
        defined_columns=[(c.name, _DEFINED_NAMES.get(c.type, str(c.type))) for c in meta.defined_column],
        time_to_live=options.time_to_live if options.HasField("time_to_live") else -1,
        max_versions=options.max_versions if options.HasField("max_versions") else 1,
        deviation_s=options.deviation_cell_version_in_sec if options.HasField("deviation_cell_version_in_sec") else 86400,
        allow_update=options.allow_update if options.HasField("allow_update") else True,
        reserved_read=request.reserved_throughput.capacity_unit.read,
        reserved_write=request.reserved_throughput.capacity_unit.write,
        split_points=_split_points(request.partitions),
        stream=_stream_spec(request.stream_spec) if request.HasField("stream_spec") else None,
    )
    return pb.CreateTableResponse()


def list_table(ctx, request: pb.ListTableRequest) -> pb.ListTableResponse:
    return pb.ListTableResponse(table_names=ctx.backend.tables.list_tables())


def delete_table(ctx, request: pb.DeleteTableRequest) -> pb.DeleteTableResponse:
    ctx.backend.tables.delete_table(request.table_name)
    return pb.DeleteTableResponse()


def describe_table(ctx, request: pb.DescribeTableRequest) -> pb.DescribeTableResponse:
    info = ctx.backend.tables.describe_table(request.table_name)
    response = pb.DescribeTableResponse()
    response.table_meta.table_name = info.name
    for column in info.primary_key:
        schema = response.table_meta.primary_key.add(name=column.name, type=_PK_TYPE_ENUMS[column.type])
        if column.auto_increment:
            schema.option = pb.AUTO_INCREMENT
    for name, kind in info.defined_columns:
        response.table_meta.defined_column.add(name=name, type=_DEFINED_ENUMS[kind])
    _fill_throughput(response.reserved_throughput_details, info)
    _fill_options(response.table_options, info)
    _fill_stream(response.stream_details, info)
    first = info.primary_key[0].name
    # Each split point as a one-column primary key (an emulator choice: the
    # SDKs do not parse shard_splits).
    response.shard_splits.extend(encode_primary_key(((first, value),)) for value in info.split_points)
    response.table_status = pb.ACTIVE
    response.creation_time = info.created_us
    return response


def update_table(ctx, request: pb.UpdateTableRequest) -> pb.UpdateTableResponse:
    options = request.table_options if request.HasField("table_options") else None
    unit = request.reserved_throughput.capacity_unit if request.HasField("reserved_throughput") else None

    def option(name):
        return getattr(options, name) if options is not None and options.HasField(name) else None

    info = ctx.backend.tables.update_table(
        request.table_name,
        time_to_live=option("time_to_live"),
        max_versions=option("max_versions"),
        deviation_s=option("deviation_cell_version_in_sec"),
        allow_update=option("allow_update"),
        reserved_read=unit.read if unit is not None and unit.HasField("read") else None,
        reserved_write=unit.write if unit is not None and unit.HasField("write") else None,
        stream=_stream_spec(request.stream_spec) if request.HasField("stream_spec") else None,
    )
    response = pb.UpdateTableResponse()
    _fill_throughput(response.reserved_throughput_details, info)
    _fill_options(response.table_options, info)
    _fill_stream(response.stream_details, info)
    return response


# ----------------------------------------------------------------------
# Row operations


def _change(action: int, table: str, row: Row, request) -> RowChange:
    return_type, return_columns = _return(request)
    return RowChange(action, table, row, _condition(request.condition), return_type, return_columns)


def _write(ctx, response, change: RowChange):
    result = ctx.backend.tables.write_row(change)
    _consumed(response.consumed, write=result.write_cu)
    if result.row is not None:
        response.row = result.row
    return response


def put_row(ctx, request: pb.PutRowRequest) -> pb.PutRowResponse:
    _no_transaction(request)
    change = _change(PUT, request.table_name, _row(request.row, "row"), request)
    return _write(ctx, pb.PutRowResponse(), change)


def update_row(ctx, request: pb.UpdateRowRequest) -> pb.UpdateRowResponse:
    _no_transaction(request)
    change = _change(UPDATE, request.table_name, _row(request.row_change, "row_change"), request)
    return _write(ctx, pb.UpdateRowResponse(), change)


def delete_row(ctx, request: pb.DeleteRowRequest) -> pb.DeleteRowResponse:
    _no_transaction(request)
    row = _row(request.primary_key, "primary_key")
    change = _change(DELETE, request.table_name, Row(row.primary_key), request)
    return _write(ctx, pb.DeleteRowResponse(), change)


def batch_write_row(ctx, request: pb.BatchWriteRowRequest) -> pb.BatchWriteRowResponse:
    _no_transaction(request)
    if request.is_atomic:
        raise errors.parameter_invalid("Atomic BatchWriteRow (is_atomic) is not supported by the emulator.")
    changes: List[RowChange] = []
    for table in request.tables:
        for index, item in enumerate(table.rows):
            if item.type not in (pb.PUT, pb.UPDATE, pb.DELETE):
                raise errors.parameter_invalid(f"Row {index} of table {table.table_name!r} has unknown type {item.type}.")
            row = _row(item.row_change, f"row {index} of table {table.table_name!r}")
            if item.type == pb.DELETE:
                row = Row(row.primary_key)
            changes.append(_change(int(item.type), table.table_name, row, item))
    results = ctx.backend.tables.batch_write(changes)
    response = pb.BatchWriteRowResponse()
    position = 0
    for table in request.tables:
        out = response.tables.add(table_name=table.table_name)
        for _ in table.rows:
            result = results[position]
            position += 1
            row = out.rows.add()
            if isinstance(result, ServiceError):
                row.is_ok = False
                row.error.code = result.code
                row.error.message = result.message
            else:
                row.is_ok = True
                _consumed(row.consumed, write=result.write_cu)
                if result.row is not None:
                    row.row = result.row
    return response


def get_row(ctx, request: pb.GetRowRequest) -> pb.GetRowResponse:
    _no_transaction(request)
    key = _row(request.primary_key, "primary_key").primary_key
    data = ctx.backend.tables.get_row(request.table_name, key, _read_options(request))
    response = pb.GetRowResponse(row=data)
    _consumed(response.consumed, read=1)
    return response


def get_range(ctx, request: pb.GetRangeRequest) -> pb.GetRangeResponse:
    _no_transaction(request)
    start = _row(request.inclusive_start_primary_key, "inclusive_start_primary_key").primary_key
    end = _row(request.exclusive_end_primary_key, "exclusive_end_primary_key").primary_key
    limit: Optional[int] = request.limit if request.HasField("limit") else None
    result = ctx.backend.tables.get_range(
        request.table_name, start, end,
        backward=request.direction == pb.BACKWARD, limit=limit, options=_read_options(request),
    )
    response = pb.GetRangeResponse(rows=result.rows)
    _consumed(response.consumed, read=max(1, result.count))
    if result.next_start is not None:
        response.next_start_primary_key = encode_primary_key(result.next_start)
    return response


ROUTES = [
    Route("/CreateTable", pb.CreateTableRequest, create_table, API_TABLE),
    Route("/ListTable", pb.ListTableRequest, list_table, API_TABLE),
    Route("/DeleteTable", pb.DeleteTableRequest, delete_table, API_TABLE),
    Route("/DescribeTable", pb.DescribeTableRequest, describe_table, API_TABLE),
    Route("/UpdateTable", pb.UpdateTableRequest, update_table, API_TABLE),
    Route("/PutRow", pb.PutRowRequest, put_row, API_TABLE),
    Route("/UpdateRow", pb.UpdateRowRequest, update_row, API_TABLE),
    Route("/DeleteRow", pb.DeleteRowRequest, delete_row, API_TABLE),
    Route("/BatchWriteRow", pb.BatchWriteRowRequest, batch_write_row, API_TABLE),
    Route("/GetRow", pb.GetRowRequest, get_row, API_TABLE),
    Route("/GetRange", pb.GetRangeRequest, get_range, API_TABLE),
]
