"""Bounded looks at an answer: quoting server text, counting entries before
decoding, naming missing fields. Each costs at most a fixed amount however
large or hostile the answer, so no answer can make an error message (or the
work to build one) huge.
"""

from __future__ import annotations

from typing import List, Optional

from google.protobuf import message as _pb_message


def clip(text: Optional[str], limit: int) -> Optional[str]:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def entries_over(body: bytes, limit: int) -> bool:
    """True when ``body`` holds more than ``limit`` top-level protobuf fields.

    Walks field headers only, stopping past ``limit``; malformed bytes end
    the walk and are left to the decoder to report.
    """
    end = len(body)
    if end <= 2 * limit:
        return False  # every field takes at least two bytes
    pos = 0
    count = 0
    while pos < end:
        # One-byte tags and lengths (fields 1-15, entries under 128 bytes)
        # take the fast path: the flood of tiny entries this guards against.
        tag = body[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(body, pos - 1, end)
            if tag is None:
                return False
        wire_type = tag & 7
        if wire_type == 2:
            if pos >= end:
                return False
            length = body[pos]
            pos += 1
            if length >= 0x80:
                length, pos = _varint(body, pos - 1, end)
                if length is None:
                    return False
            pos += length
        elif wire_type == 0:
            value, pos = _varint(body, pos, end)
            if value is None:
                return False
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            return False
        count += 1
        if count > limit:
            return True
    return False


def _varint(data: bytes, pos: int, end: int):
    result = 0
    shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    return None, pos


def missing_fields(message: _pb_message.Message, limit: int = 5) -> str:
    """The first ``limit`` missing required fields of an uninitialised
    ``message``, as paths (``tunnels[0].tunnel_id``), then "and more" if
    there may be others. Valid sub-messages are skipped by the C decoder's
    own check, so only the first bad entries are visited."""
    found: List[str] = []
    more = _walk(message, "", found, limit)
    text = ", ".join(found)
    return text + (", and more" if more else "")


def _walk(message: _pb_message.Message, prefix: str, found: List[str], limit: int) -> bool:
    """Append missing paths to ``found``; True when the limit cut the walk short."""
    for field in message.DESCRIPTOR.fields:
        path = prefix + field.name
        if field.label == field.LABEL_REQUIRED and not message.HasField(field.name):
            if len(found) >= limit:
                return True
            found.append(path)
            continue
        if field.message_type is None:
            continue
        if field.label == field.LABEL_REPEATED:
            items = enumerate(getattr(message, field.name))
        elif message.HasField(field.name):
            items = [(None, getattr(message, field.name))]
        else:
            continue
        for index, child in items:
            if child.IsInitialized():
                continue
            where = path if index is None else f"{path}[{index}]"
            if _walk(child, where + ".", found, limit):
                return True
    return False
