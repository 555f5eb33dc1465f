"""Frames: how several requests and replies of the node protocol share one byte stream (the
stdin and stdout of `sfarm node serve`, one SSH channel).

A frame is its payload's length in ASCII decimal digits, a newline, then the payload:
`17\\n{"protocol": ...}`. The header is a line so that a reader can find the next frame after a
header that is no length (it skips that line), and a person can type a frame by hand. Pure
framing: what a payload means is sfarm.runtime.protocol's.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

MAX_HEADER = 20  # digits of a length, and then some: a longer line is no header
MAX_PAYLOAD = 1 << 30  # 1 GiB: far beyond any request (files travel inside deploy's only)
_SKIP_CHUNK = 1 << 16


class FrameError(Exception):
    """A frame that cannot be read as one. The stream is positioned after the bad part, so the
    next frame can be read (see `read_frame`)."""


class BrokenStream(Exception):
    """Nothing more can be read: the stream ended inside a frame (the peer is gone), or a
    header announced more than MAX_PAYLOAD bytes (where the next frame begins is unknown)."""


class ByteReader(Protocol):
    """What `read_frame` reads from: a binary file, a paramiko channel's file."""

    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


def encode_frame(payload: bytes) -> bytes:
    """`payload` as one frame."""
    return b"%d\n" % len(payload) + payload


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    """Write `payload` as one frame and flush it (the peer waits for it)."""
    stream.write(encode_frame(payload))
    stream.flush()


def read_frame(stream: ByteReader) -> bytes | None:
    """The next frame's payload, or None when the stream ends before a frame begins.

    A header that is no length raises FrameError after its line was skipped; a stream that
    ends inside a frame, or a length over MAX_PAYLOAD, raises BrokenStream."""
    header = stream.readline(MAX_HEADER + 1)
    if not header:
        return None
    if not header.endswith(b"\n"):
        if len(header) <= MAX_HEADER:
            raise BrokenStream(f"the stream ended inside a frame's header: {header[:40]!r}")
        _skip_line(stream)
        raise FrameError(f"a frame header is a length and a newline, not {header[:40]!r}…")
    digits = header[:-1].strip()
    if not digits.isdigit():
        raise FrameError(f"a frame header is a length and a newline, not {header[:40]!r}")
    size = int(digits)
    if size > MAX_PAYLOAD:
        raise BrokenStream(f"a frame of {size} bytes is over the limit ({MAX_PAYLOAD})")
    payload = _read_exactly(stream, size)
    if len(payload) < size:
        raise BrokenStream(f"the stream ended after {len(payload)} of a frame's {size} bytes")
    return payload


def _read_exactly(stream: ByteReader, size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end of the stream (a pipe returns what it has)."""
    parts, missing = [], size
    while missing > 0:
        chunk = stream.read(missing)
        if not chunk:
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def _skip_line(stream: ByteReader) -> None:
    while True:
        rest = stream.readline(_SKIP_CHUNK)
        if not rest or rest.endswith(b"\n"):
            return
