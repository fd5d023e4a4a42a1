"""Request bodies as sent: ``Content-Encoding`` (gzip, deflate) and the JSON charset.

Compressed bodies are inflated with a hard cap on the output, so a small "zip bomb" costs
at most the body limit of memory and is answered 413. Only UTF-8 JSON is read (RFC 8259);
any other declared charset is 415 rather than a silently wrong decode.
"""

from __future__ import annotations

import zlib
from typing import Final

from irtgate.signals import errors
from irtgate.signals.errors import ClientError

IDENTITY: Final = "identity"
# zlib's wbits: 16 + 15 = gzip wrapper, 15 = zlib wrapper (HTTP "deflate", RFC 9110),
# -15 = raw deflate (what some clients send as "deflate" anyway).
_WBITS: Final = {"gzip": (31,), "x-gzip": (31,), "deflate": (15, -15)}
_CHUNK: Final = 256 * 1024


def content_coding(header: str | None) -> str:
    """The one coding a body carries, lower-cased (``identity`` when none); raises 415 for
    codings irtgate cannot read, or a list of several."""
    if header is None:
        return IDENTITY
    coding = header.strip().lower()
    if coding in ("", IDENTITY):
        return IDENTITY
    if coding not in _WBITS:
        shown = coding if coding.isascii() and coding.replace("-", "").isalnum() else "other"
        raise errors.UNSUPPORTED_MEDIA_TYPE.with_message(
            f"content-encoding {shown[:32]} is not supported; send identity, gzip or deflate"
        )
    return coding


def check_charset(content_type: str) -> None:
    """415 unless the content type's charset, if any, is UTF-8."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset":
            continue
        charset = value.strip().strip('"').lower()
        if charset not in ("utf-8", "utf8"):
            shown = charset if charset.isascii() and len(charset) <= 32 else "other"
            raise errors.UNSUPPORTED_MEDIA_TYPE.with_message(
                f"charset {shown} is not supported; JSON bodies must be UTF-8"
            )


def decode_body(body: bytes, coding: str, limit: int) -> bytes:
    """The body with its content coding removed, at most ``limit`` bytes (else 413)."""
    if coding == IDENTITY:
        return body
    last: ClientError | None = None
    for wbits in _WBITS[coding]:
        try:
            return _inflate(body, wbits, limit)
        except zlib.error:
            last = errors.INVALID_JSON.with_message(
                f"body is labelled content-encoding {coding} but is not valid {coding} data"
            )
    assert last is not None
    raise last


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    data = body
    while data:
        # max_length bounds each step, so the output never outgrows the limit by more
        # than one chunk, whatever the compression ratio.
        out += inflater.decompress(data, _CHUNK)
        if len(out) > limit:
            raise errors.BODY_TOO_LARGE.with_message(
                f"request body inflates to more than the limit of {limit} bytes"
            )
        data = inflater.unconsumed_tail
    out += inflater.flush()
    if not inflater.eof:
        raise zlib.error("truncated stream")
    if len(out) > limit:
        raise errors.BODY_TOO_LARGE.with_message(
            f"request body inflates to more than the limit of {limit} bytes"
        )
    return bytes(out)
