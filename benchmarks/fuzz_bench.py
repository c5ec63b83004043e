"""Coverage-guided fuzzing of what parses untrusted bytes: the PlainBuffer
decoder, the token and stream-iterator parsers, the emulator's body framing
and the emulator's whole request handling (an in-process ``WireApp`` over a
real SQLite-backed model, every request validly signed so the body reaches
the protobuf parser and the handlers).

Uses atheris (libFuzzer) when installed (``make fuzz`` installs it); without
it, falls back to seeded random mutation of the same corpus (not
coverage-guided, and says so). The corpus starts from real encoded rows,
tokens and requests of every table and Tunnel call.

A crash is anything a target must never do: an exception other than the
documented error (``PlainBufferError``, ``TokenError``, ``FramingError``), a
5xx answer from the emulator, or an error message over the documented
bound. Crashing inputs are saved under ``--crash-dir``. Prints inputs tried
per target, crashes, peak memory; the last line is
``fuzz: N inputs, K crashes``; exits 1 when K > 0.

Usage::

    python benchmarks/fuzz_bench.py [--inputs 100000] [--seed 1] [--crash-dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import io
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from http.client import parse_headers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import atheris
except ImportError:  # the fallback below still runs
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["beam_tunnel"]):
        import beam_tunnel.emulator  # noqa: F401
        import beam_tunnel.protocol.plainbuffer  # noqa: F401
        import beam_tunnel.protocol.tokens  # noqa: F401

from beam_tunnel.emulator.config import EmulatorConfig  # noqa: E402
from beam_tunnel.emulator.faults import FaultInjector, FaultSettings  # noqa: E402
from beam_tunnel.emulator.model import Emulator  # noqa: E402
from beam_tunnel.emulator.wire import framing  # noqa: E402
from beam_tunnel.emulator.wire.http import MAX_ERROR_MESSAGE_CHARS, WireApp  # noqa: E402
from beam_tunnel.emulator.wire.routes import build_routes  # noqa: E402
from beam_tunnel.errors import PlainBufferError  # noqa: E402
from beam_tunnel.protocol import plainbuffer, signing, table_pb2, tokens  # noqa: E402
from beam_tunnel.protocol import tunnel_pb2 as tpb  # noqa: E402
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Cell, CellOp, Row, SequenceInfo  # noqa: E402

_TARGETS = ("plainbuffer", "token", "framing", "wire")
_KEY_ID, _SECRET = "fuzz-id", "fuzz-secret"


# --- targets -------------------------------------------------------------------


def _plainbuffer(data: bytes) -> None:
    for decode in (plainbuffer.decode_row, plainbuffer.decode_rows, plainbuffer.decode_row_without_pk):
        try:
            decode(data)
        except PlainBufferError:
            pass


def _token(data: bytes) -> None:
    text = data.decode("latin-1")
    for parse in (tokens.decode_token, tokens.decode_stream_iterator):
        try:
            parse(text)
        except tokens.TokenError:
            pass
    tokens.is_stream_token(text)


def _framing(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    headers = parse_headers(io.BytesIO(head + b"\r\n\r\n"))
    try:
        framing.read_body(io.BytesIO(body), headers, 4096)
    except framing.FramingError:
        pass


class _Wire:
    """An emulator model and WireApp in this process; signed calls."""

    def __init__(self) -> None:
        parent = "/dev/shm" if os.path.isdir("/dev/shm") else None  # fsyncs on tmpfs are free
        self.data_dir = tempfile.mkdtemp(prefix="fuzz-emulator-", dir=parent)
        config = EmulatorConfig(data_dir=self.data_dir, access_keys={_KEY_ID: _SECRET}, max_date_skew_s=None,
                                max_body_bytes=1 << 20)
        self.backend = Emulator(config)
        self.routes = build_routes()
        self.paths = sorted(self.routes)
        self.app = WireApp(self.backend, self.routes, FaultInjector(FaultSettings()))
        self.instance = config.instance_name

    def call(self, path: str, body: bytes, flags: int = 0):
        extra = {}
        if flags & 1:
            extra = {"x-ots-request-compress-type": "deflate", "x-ots-request-compress-size": str(len(body))}
            body = zlib.compress(body)
        if flags & 2:
            extra["x-ots-response-compress-type"] = "deflate"
        headers = {
            "x-ots-date": "2026-01-01T00:00:00.000Z",
            "x-ots-apiversion": "2018-04-01" if flags & 4 else "2015-12-31",
            "x-ots-accesskeyid": _KEY_ID,
            "x-ots-instancename": self.instance,
            "x-ots-contentmd5": signing.content_md5(body),
            **extra,
        }
        headers["x-ots-signature"] = signing.sign_request(path, headers, _SECRET)
        return self.app.handle("POST", path, headers.items(), body)

    def ok(self, path: str, message):
        response = self.call(path, message.SerializeToString())
        if response.status != 200:
            raise RuntimeError(f"set-up call {path} failed: {table_pb2.Error.FromString(response.body)}")
        return response.body

    def close(self) -> None:
        self.backend.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class _Crash(Exception):
    pass


def _wire_target(wire: _Wire):
    def run(data: bytes) -> None:
        if len(data) < 2:
            return
        path = wire.paths[data[0] % len(wire.paths)]
        response = wire.call(path, data[2:], data[1])
        if response.drop or response.status >= 500:
            raise _Crash(f"{path} answered {response.status}: {response.body[:300]!r}")
        if response.status != 200:
            body = response.body
            if dict(response.headers).get("x-ots-response-compress-type"):
                body = zlib.decompress(body)
            message = table_pb2.Error.FromString(body).message
            if len(message) > MAX_ERROR_MESSAGE_CHARS + 64:
                raise _Crash(f"{path}: error message of {len(message)} characters")

    return run


# --- corpus --------------------------------------------------------------------


def _row(key: str, index: int) -> Row:
    return Row((("id", key), ("n", index)), (
        Cell("s", "text" * (index % 4), 1_700_000_000_000), Cell("i", -index), Cell("b", True),
        Cell("d", index / 3), Cell("x", bytes(range(index % 40))),
    ))


def _corpus(wire: _Wire):
    """Real inputs for every target: (target index, bytes)."""
    rows = [_row(f"k{i}", i) for i in range(5)]
    pb_inputs = [plainbuffer.encode_row(row) for row in rows]
    pb_inputs.append(plainbuffer.encode_rows(rows))
    pb_inputs.append(plainbuffer.encode_row(rows[0]._replace(sequence=SequenceInfo(3, 1_700_000_000_000_000, 7))))
    pb_inputs.append(plainbuffer.encode_row(Row((("id", "k"), ("n", 1)), (Cell("s", op=CellOp.DELETE_ALL_VERSIONS),
                                                                          Cell("i", 5, op=CellOp.INCREMENT)))))
    pb_inputs.append(plainbuffer.encode_primary_key((("id", INF_MIN), ("n", INF_MAX))))
    iterator = tokens.encode_stream_iterator(tokens.StreamIterator("t_1", "p0", SequenceInfo(1, 2, 3)))
    token_inputs = [
        tokens.encode_token(tokens.TokenContent(iterator=iterator, total_count=5)),
        tokens.encode_token(tokens.TokenContent(primary_key=pb_inputs[-1])), iterator, tokens.FINISHED,
    ]
    framing_inputs = [b"Content-Length: 5\r\n\r\nhello", b"Transfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n"]

    # The emulator: a table with rows and a stream, tunnels, a client, real tokens.
    create = table_pb2.CreateTableRequest()
    create.table_meta.table_name = "t"
    create.table_meta.primary_key.add(name="id", type=table_pb2.STRING)
    create.table_meta.primary_key.add(name="n", type=table_pb2.INTEGER)
    create.reserved_throughput.capacity_unit.read = 0
    create.stream_spec.enable_stream = True
    create.stream_spec.expiration_time = 24
    wire.ok("/CreateTable", create)
    requests = [("/CreateTable", create)]
    for row in rows:
        put = table_pb2.PutRowRequest(table_name="t", row=plainbuffer.encode_row(row))
        put.condition.row_existence = table_pb2.IGNORE
        wire.ok("/PutRow", put)
        requests.append(("/PutRow", put))
    tunnel_id = tpb.CreateTunnelResponse.FromString(wire.ok("/tunnel/create", tpb.CreateTunnelRequest(
        tunnel=tpb.Tunnel(table_name="t", tunnel_name="s", tunnel_type=tpb.BaseAndStream)))).tunnel_id
    client = tpb.ConnectResponse.FromString(wire.ok("/tunnel/connect", tpb.ConnectRequest(
        tunnel_id=tunnel_id, client_config=tpb.ClientConfig(timeout=10 ** 6)))).client_id
    heartbeat = tpb.HeartbeatRequest(tunnel_id=tunnel_id, client_id=client)
    channels = tpb.HeartbeatResponse.FromString(wire.ok("/tunnel/heartbeat", heartbeat)).channels
    heartbeat.channels.extend(channels)
    ids = dict(tunnel_id=tunnel_id, client_id=client, channel_id=channels[0].channel_id)
    token = tpb.GetCheckpointResponse.FromString(wire.ok("/tunnel/getcheckpoint", tpb.GetCheckpointRequest(
        **ids))).checkpoint
    read = tpb.ReadRecordsResponse.FromString(wire.ok("/tunnel/readrecords", tpb.ReadRecordsRequest(
        token=token, **ids)))
    token_inputs += [token, read.next_token]
    pb_inputs += [record.record for record in read.records][:5]
    get_range = table_pb2.GetRangeRequest(table_name="t", direction=table_pb2.FORWARD, max_versions=1,
                                          inclusive_start_primary_key=plainbuffer.encode_primary_key(
                                              (("id", INF_MIN), ("n", INF_MIN))),
                                          exclusive_end_primary_key=plainbuffer.encode_primary_key(
                                              (("id", INF_MAX), ("n", INF_MAX))))
    batch = table_pb2.BatchWriteRowRequest()
    table = batch.tables.add(table_name="t")
    change = table.rows.add(type=table_pb2.PUT, row_change=pb_inputs[1])
    change.condition.row_existence = table_pb2.IGNORE
    requests += [
        ("/ListTable", table_pb2.ListTableRequest()), ("/DescribeTable", table_pb2.DescribeTableRequest(
            table_name="t")), ("/GetRange", get_range), ("/BatchWriteRow", batch),
        ("/GetRow", table_pb2.GetRowRequest(table_name="t", primary_key=plainbuffer.encode_primary_key(
            (("id", "k1"), ("n", 1))), max_versions=1)),
        ("/tunnel/list", tpb.ListTunnelRequest(table_name="t")),
        ("/tunnel/describe", tpb.DescribeTunnelRequest(table_name="t", tunnel_name="s")),
        ("/tunnel/heartbeat", heartbeat), ("/tunnel/getcheckpoint", tpb.GetCheckpointRequest(**ids)),
        ("/tunnel/readrecords", tpb.ReadRecordsRequest(token=token, **ids)),
        ("/tunnel/checkpoint", tpb.CheckpointRequest(checkpoint=read.next_token or token, sequence_number=1, **ids)),
        ("/tunnel/getrpo", tpb.GetRpoRequest(tunnel_id=tunnel_id)),
        ("/tunnel/schedule", tpb.ScheduleRequest(tunnel_id=tunnel_id, channels=channels)),
        ("/tunnel/connect", tpb.ConnectRequest(tunnel_id=tunnel_id)),
    ]
    corpus = [(0, data) for data in pb_inputs] + [(1, text.encode()) for text in token_inputs]
    corpus += [(2, data) for data in framing_inputs]
    for path, message in requests:
        index = wire.paths.index(path)
        corpus.append((3, bytes([index, 0]) + message.SerializeToString()))
    return corpus


# --- driver --------------------------------------------------------------------


class _Fuzzer:
    def __init__(self, wire: _Wire, inputs: int, crash_dir: str) -> None:
        self.targets = (_plainbuffer, _token, _framing, _wire_target(wire))
        self.inputs = inputs
        self.crash_dir = crash_dir
        self.tried = collections.Counter()
        self.crashes = collections.Counter()
        self.started = time.monotonic()

    def one(self, data: bytes) -> None:
        if not data:
            return
        name = _TARGETS[data[0] % len(_TARGETS)]
        self.tried[name] += 1
        try:
            self.targets[data[0] % len(_TARGETS)](data[1:])
        except Exception as err:  # noqa: BLE001 - anything else is what we are looking for
            self.crashes[name] += 1
            digest = hashlib.sha1(data).hexdigest()[:16]
            os.makedirs(self.crash_dir, exist_ok=True)
            with open(os.path.join(self.crash_dir, f"{name}-{digest}"), "wb") as out:
                out.write(data)
            if self.crashes[name] <= 3:
                print(f"CRASH in {name} (input saved as {name}-{digest}): {err!r}", file=sys.stderr)
                traceback.print_exc(limit=4)
        total = sum(self.tried.values())
        if total % 20000 == 0:
            print(f"  {total} inputs, {sum(self.crashes.values())} crashes, "
                  f"{time.monotonic() - self.started:.0f} s", flush=True)

    def done(self) -> bool:
        return sum(self.tried.values()) >= self.inputs

    def report(self) -> int:
        total = sum(self.tried.values())
        crashes = sum(self.crashes.values())
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        elapsed = time.monotonic() - self.started
        for name in _TARGETS:
            print(f"{name:12s} {self.tried[name]:8d} inputs {self.crashes[name]:4d} crashes")
        print(f"elapsed {elapsed:.0f} s ({total / max(elapsed, 1e-9):.0f} inputs/s), peak memory {peak_mib:.0f} MiB")
        print(f"fuzz: {total} inputs, {crashes} crashes", flush=True)
        return 1 if crashes else 0


def _encode(target: int, data: bytes) -> bytes:
    return bytes([target]) + data


def _run_atheris(fuzzer: _Fuzzer, corpus, seed: int, wire: _Wire) -> None:
    corpus_dir = tempfile.mkdtemp(prefix="fuzz-corpus-")
    for number, (target, data) in enumerate(corpus):
        with open(os.path.join(corpus_dir, f"seed-{number}"), "wb") as out:
            out.write(_encode(target, data))

    def test_one_input(data: bytes) -> None:
        fuzzer.one(data)
        if fuzzer.done():
            status = fuzzer.report()
            wire.close()
            shutil.rmtree(corpus_dir, ignore_errors=True)
            os._exit(status)  # libFuzzer would otherwise keep going

    args = [sys.argv[0], f"-seed={seed}", "-max_len=65536", "-rss_limit_mb=4096", "-print_final_stats=0",
            "-close_fd_mask=0", corpus_dir]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


def _run_random(fuzzer: _Fuzzer, corpus, seed: int) -> None:
    print("atheris is not installed: seeded random mutation (not coverage-guided); `make fuzz` installs it")
    rng = random.Random(seed)
    while not fuzzer.done():
        target, data = rng.choice(corpus)
        data = bytearray(data)
        for _ in range(rng.choice((1, 2, 4, 16))):
            action = rng.randrange(4)
            if action == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif action == 1:
                data = data[: rng.randrange(len(data) + 1)]
            elif action == 2:
                at = rng.randrange(len(data) + 1)
                data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
            elif data:
                start = rng.randrange(len(data))
                data[start:start] = data[start:start + rng.randint(1, 32)]
        fuzzer.one(_encode(target, bytes(data)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs to try (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="fuzzer seed (default 1)")
    parser.add_argument("--crash-dir", default="fuzz-crashes", help="where crashing inputs are saved")
    args = parser.parse_args()
    if args.inputs < 1:
        parser.error(f"--inputs must be >= 1, got {args.inputs}")
    wire = _Wire()
    corpus = _corpus(wire)
    print(f"fuzzing {', '.join(_TARGETS)}: {args.inputs} inputs, seed {args.seed}, "
          f"{len(corpus)} corpus entries, {'atheris (coverage-guided)' if atheris else 'random mutation'}")
    fuzzer = _Fuzzer(wire, args.inputs, args.crash_dir)
    if atheris is not None:
        _run_atheris(fuzzer, corpus, args.seed, wire)
    _run_random(fuzzer, corpus, args.seed)
    status = fuzzer.report()
    wire.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
