"""Helpers for the hostile-request suite: an emulator in a child process (so
its memory can be measured on its own) and seeded mutators that turn real
encoded requests into hostile ones."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import zlib
from types import SimpleNamespace
from typing import List, Tuple

from google.protobuf.message import EncodeError

_RUNNER = r"""
import json, sys
from beam_tunnel.emulator import EmulatorServer

with EmulatorServer(data_dir=sys.argv[1], max_connections=32, header_timeout_s=10, body_timeout_s=10) as server:
    print(json.dumps({"endpoint": server.endpoint, "instance_name": server.instance_name,
                      "access_key_id": server.access_key_id, "access_key_secret": server.access_key_secret}),
          flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["faults"]:
            server.faults.configure(error_rate=float(words[1]), seed=int(words[2]))
        elif words[:1] == ["clear"]:
            server.faults.clear()
        print("ok", flush=True)
"""


class ChildEmulator:
    """``python -c RUNNER``: an EmulatorServer in its own process.

    Attributes mirror EmulatorServer's (endpoint, keys, instance) so
    ``wire_kit.RawClient`` accepts it. Always use as a context manager: the
    child is stopped (stdin closed, then killed if it lingers) on exit.
    """

    def __init__(self, data_dir: str) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, data_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator child process did not start:\n{self.stderr()}")
        self.__dict__.update(json.loads(line))

    def command(self, text: str) -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def memory_kib(self) -> Tuple[int, int]:
        """(current RSS, peak RSS) of the child, in KiB, from /proc."""
        fields = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.split()[0] if value.split() else ""
        return int(fields["VmRSS"]), int(fields["VmHWM"])

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-20000:]

    def __enter__(self) -> "ChildEmulator":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=15)
        finally:
            self.process.stdout.close()
            self._stderr.close()


def server_view(child: ChildEmulator) -> SimpleNamespace:
    return SimpleNamespace(endpoint=child.endpoint, instance_name=child.instance_name,
                           access_key_id=child.access_key_id, access_key_secret=child.access_key_secret)


# --- mutators ------------------------------------------------------------------

_INTS = {
    "int32": (0, -1, 1, 2 ** 31 - 1, -2 ** 31),
    "int64": (0, -1, 1, 2 ** 31, 2 ** 63 - 1, -2 ** 63),
    "uint32": (0, 1, 2 ** 32 - 1),
    "uint64": (0, 1, 2 ** 63, 2 ** 64 - 1),
}
_STRINGS = ("", " ", "\x00", "x" * 5000, "é☃" * 50, "../..", "%s%n", "nope")


def _scalar_kind(field) -> str:
    names = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "uint64", 7: "uint32",
             8: "bool", 9: "string", 12: "bytes", 13: "uint32", 14: "enum", 15: "int32", 16: "int64",
             17: "int32", 18: "int64"}
    return names.get(field.type, "message")


def _fields(message, out: List[Tuple[object, object]], depth: int = 0) -> None:
    """(message, field) pairs of ``message`` and its set sub-messages."""
    for field in message.DESCRIPTOR.fields:
        out.append((message, field))
        if field.message_type is None or depth > 4:
            continue
        repeated = field.label == field.LABEL_REPEATED
        if repeated:
            for item in list(getattr(message, field.name))[:3]:
                _fields(item, out, depth + 1)
        elif message.HasField(field.name):
            _fields(getattr(message, field.name), out, depth + 1)


def _flip_bits(rng, data: bytes, count: int) -> bytes:
    if not data:
        return bytes([rng.getrandbits(8)])
    buffer = bytearray(data)
    for _ in range(count):
        buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def _mutate_bytes_value(rng, value: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return _flip_bits(rng, value, rng.randint(1, 4))
    if choice == 1:
        return value[: rng.randrange(len(value) + 1)]
    if choice == 2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))
    if choice == 3:
        return b"\x75\x00\x00\x00" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(32)))
    if choice == 4:
        return value * rng.randint(2, 50)
    return b""


def _mutate_token(rng, token: str) -> str:
    try:
        raw = base64.b64decode(token, validate=True)
    except ValueError:
        return token[: rng.randrange(len(token) + 1)]
    return base64.b64encode(_mutate_bytes_value(rng, raw)).decode()


def mutate_field(rng, message) -> bytes:
    """``message`` (a copy) with one field set to an edge value, serialised."""
    copy = type(message)()
    copy.CopyFrom(message)
    pairs: List[Tuple[object, object]] = []
    _fields(copy, pairs)
    if not pairs:  # a message without fields: add unknown ones instead
        return mutate_body(rng, copy.SerializeToString())
    owner, field = rng.choice(pairs)
    kind = _scalar_kind(field)
    repeated = field.label == field.LABEL_REPEATED
    try:
        if repeated:
            container = getattr(owner, field.name)
            if len(container) and rng.random() < 0.6:
                items = list(container)
                for _ in range(rng.choice((1, 10, 300))):
                    if kind == "message":
                        container.add().CopyFrom(rng.choice(items))
                    else:
                        container.append(rng.choice(items))
            else:
                del container[:]
        elif kind == "message":
            owner.ClearField(field.name) if rng.random() < 0.5 else getattr(owner, field.name).Clear()
        elif kind in _INTS:
            setattr(owner, field.name, rng.choice(_INTS[kind]))
        elif kind in ("double", "float"):
            setattr(owner, field.name, rng.choice((0.0, -1.0, 1e308, float("inf"), float("nan"))))
        elif kind == "bool":
            setattr(owner, field.name, not getattr(owner, field.name))
        elif kind == "enum":
            setattr(owner, field.name, rng.choice(field.enum_type.values).number)
        elif kind == "string":
            value = getattr(owner, field.name)
            if value and field.name in ("token", "checkpoint") and rng.random() < 0.7:
                setattr(owner, field.name, _mutate_token(rng, value))
            else:
                setattr(owner, field.name, rng.choice(_STRINGS))
        elif kind == "bytes":
            setattr(owner, field.name, _mutate_bytes_value(rng, getattr(owner, field.name)))
        if rng.random() < 0.2:
            owner.ClearField(field.name) if not repeated else None
    except (ValueError, TypeError, AttributeError):
        pass
    try:
        return copy.SerializeToString()
    except EncodeError:
        return copy.SerializePartialToString()


def mutate_body(rng, body: bytes) -> bytes:
    """Byte-level damage: bit flips, truncation, splices, duplication, junk."""
    choice = rng.randrange(6)
    if choice == 0:
        return _flip_bits(rng, body, rng.choice((1, 1, 2, 4, 16)))
    if choice == 1:
        return body[: rng.randrange(len(body) + 1)]
    if choice == 2 and body:
        at = rng.randrange(len(body))
        return body[:at] + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16))) + body[at:]
    if choice == 3 and body:
        start = rng.randrange(len(body))
        end = rng.randrange(start, len(body) + 1)
        return body[:start] + body[start:end] * rng.randint(2, 20) + body[end:]
    if choice == 4:
        return bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 3, 17, 200, 4000))))
    # A varint that claims a huge length or a negative number.
    return body + rng.choice((b"\x0a\xff\xff\xff\xff\x0f", b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                              b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"))


def java_compress(body: bytes) -> Tuple[bytes, dict]:
    """``body`` deflated with the headers the Java SDK adds."""
    return zlib.compress(body), {"x-ots-request-compress-type": "deflate",
                                 "x-ots-request-compress-size": str(len(body))}


def env_seed(default: int) -> int:
    text = os.environ.get("HOSTILE_SEED")
    return int(text) if text else default
