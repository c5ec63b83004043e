"""CRC-8 as PlainBuffer uses it: polynomial 0x07 (x^8 + x^2 + x + 1), initial
value 0, no reflection, no final XOR.

The decoder inlines the per-byte update ``crc = CRC8_TABLE[crc ^ byte]`` in its
hot loop (a function call per field costs more than the table lookups it
wraps); :func:`crc8` is for everything else.
"""

from __future__ import annotations

from typing import List

__all__ = ["CRC8_TABLE", "crc8"]


def _build_table() -> List[int]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


CRC8_TABLE: List[int] = _build_table()
"""``CRC8_TABLE[b]`` is the CRC of the single byte ``b`` from state 0."""


def crc8(crc: int, data: bytes) -> int:
    """Continue a CRC-8 from state ``crc`` over ``data``.

    Args:
      crc: the running checksum, 0..255 (0 to start a new one).
      data: the bytes to feed, in wire order.

    Returns:
      The new running checksum, 0..255.
    """
    table = CRC8_TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc
