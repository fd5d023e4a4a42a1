"""A minimal keep-alive HTTP/1.1 client for the latency benchmarks.

Hand-rolled on asyncio streams on purpose: an HTTP library's own per-request overhead
would be a large share of the sub-millisecond differences these benchmarks measure.
"""

from __future__ import annotations

import asyncio
import socket
import time


def post_bytes(port: int, payload: bytes, path: str = "/v1/chat/completions") -> bytes:
    """A complete JSON POST request, ready to write."""
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Nagle + delayed ACK would add ~40 ms to small writes.
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def timed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> float:
    """One request on a keep-alive connection; ms until the whole response is read."""
    t0 = time.perf_counter()
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"HTTP {status}")
    return (time.perf_counter() - t0) * 1000
