"""Content-Encoding and charset on the ext_proc path: decoded, bounded, or refused clearly."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from irtgate.server.settings import Settings
from tests.server.test_extproc import body, headers, make, set_headers

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}


def error(r: pb.ProcessingResponse) -> tuple[int, str, str]:
    imm = r.immediate_response
    e = json.loads(imm.body)["error"]
    return imm.status.code, e["code"], e["message"]


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
    ],
)
async def test_compressed_bodies_are_read_and_the_rewrite_drops_the_coding(
    coding: str, pack: object
) -> None:
    proc, _, _ = make()
    assert callable(pack)
    r = await proc.handle(headers(extra={"content-encoding": coding}))
    assert r.WhichOneof("response") == "request_headers"
    r = await proc.handle(body(pack(json.dumps(CHAT).encode())))
    common = r.request_body.response
    new = json.loads(common.body_mutation.body)  # plain JSON, not compressed again
    assert new["model"] == "demo-small-1"
    assert set_headers(common)["content-length"] == str(len(common.body_mutation.body)).encode()
    assert "content-encoding" in common.header_mutation.remove_headers


async def test_a_compressed_passthrough_body_is_left_as_sent() -> None:
    proc, _, _ = make()
    await proc.handle(headers(extra={"content-encoding": "gzip"}))
    doc = {**CHAT, "model": "demo-large-1"}
    r = await proc.handle(body(gzip.compress(json.dumps(doc).encode())))
    common = r.request_body.response
    assert not common.HasField("body_mutation")
    assert not common.header_mutation.remove_headers


async def test_a_plain_body_labelled_gzip_is_a_clear_400() -> None:
    proc, _, _ = make()
    await proc.handle(headers(extra={"content-encoding": "gzip"}))
    status, code, message = error(await proc.handle(body(CHAT)))
    assert (status, code) == (400, "invalid_json")
    assert "labelled content-encoding gzip" in message


async def test_a_decompression_bomb_is_413_without_inflating_it() -> None:
    limit = 1024 * 1024
    proc, _, registry = make(Settings(body_limit=limit))
    await proc.handle(headers(extra={"content-encoding": "gzip"}))
    bomb = gzip.compress(b"{" + b" " * (64 * limit))  # 64 MiB of spaces: ~64 KB on the wire
    assert len(bomb) < limit // 4
    status, code, _ = error(await proc.handle(body(bomb)))
    assert (status, code) == (413, "request_too_large")
    assert registry.get_sample_value("irtgate_errors_total", {"kind": "request_too_large"}) == 1


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_unsupported_codings_are_415_at_headers(coding: str) -> None:
    proc, _, _ = make()
    status, code, message = error(await proc.handle(headers(extra={"content-encoding": coding})))
    assert (status, code) == (415, "unsupported_media_type")
    assert "content-encoding" in message


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json; charset=utf-8", True),
        ('application/json; charset="UTF-8"', True),
        ("application/json;charset=utf-16", False),
        ("application/json; charset=latin-1", False),
    ],
)
async def test_only_utf8_json_is_accepted(content_type: str, ok: bool) -> None:
    proc, _, _ = make()
    r = await proc.handle(headers(extra={"content-type": content_type}))
    if ok:
        assert r.WhichOneof("response") == "request_headers"
        return
    status, code, message = error(r)
    assert (status, code) == (415, "unsupported_media_type")
    assert "UTF-8" in message
