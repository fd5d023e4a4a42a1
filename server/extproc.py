"""Envoy ext_proc servicer: one :class:`StreamProcessor` per HTTP request, one method per phase.

Envoy is configured with request headers SEND, request body BUFFERED and everything on the
response side SKIP/NONE (SSE passes straight through). The client-facing ``x-irtgate-*``
response headers are added by Envoy from the dynamic metadata we return, so no response
phase round trip is needed.

The body reply carries, in one ``CommonResponse``: the rewritten body, the matching
``content-length`` (set via ``raw_value``: Envoy 1.40 applies ``value`` as empty), and
``clear_route_cache``; plus dynamic metadata under ``irtgate`` that the routes match.
Routing on metadata rather than a header means a client cannot pick the upstream by sending
a header while irtgate is down.

For gateways whose routes cannot match metadata (Envoy Gateway's ``HTTPRoute``), the body
reply also sets ``x-irtgate-upstream`` to the chosen upstream; a client-sent copy is removed
in the headers reply (with a route clear), so while irtgate is up only its own value routes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from irtgate.server.core import GatewayCore, Verdict
from irtgate.server.encoding import IDENTITY
from irtgate.signals import errors
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind

log = logging.getLogger(__name__)

METADATA_NAMESPACE: Final = "irtgate"
# The routing header irtgate owns: set to the chosen upstream, a client's copy removed.
ROUTE_HEADER: Final = "x-irtgate-upstream"


def header(key: str, value: str | bytes) -> base_pb2.HeaderValueOption:
    raw = value if isinstance(value, bytes) else value.encode()
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, raw_value=raw))


def immediate(error: ClientError) -> pb.ProcessingResponse:
    """An OpenAI-style JSON error answered by Envoy on our behalf."""
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=error.status),
            headers=pb.HeaderMutation(set_headers=[header("content-type", "application/json")]),
            body=error.body(),
            details=f"irtgate_{error.code}",
        )
    )


def _metadata(verdict: Verdict) -> struct_pb2.Struct:
    md = struct_pb2.Struct()
    md.update({METADATA_NAMESPACE: verdict.metadata()})
    return md


def _headers_map(headers: base_pb2.HeaderMap) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in headers.headers:
        # Envoy sends values in raw_value; `value` is empty.
        out[h.key.lower()] = h.raw_value.decode("latin-1") if h.raw_value else h.value
    return out


class StreamProcessor:
    """The state of one HTTP request as it moves through the phases."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core
        self.api: ApiKind | None = None
        # True once nothing more is expected from Envoy for this request (see Process).
        self.done = False
        self.request_id: str | None = None
        self.coding = IDENTITY

    async def handle(self, request: pb.ProcessingRequest) -> pb.ProcessingResponse:
        phase = request.WhichOneof("request")
        try:
            if phase == "request_headers":
                return self.on_request_headers(request.request_headers)
            if phase == "request_body":
                return await self.on_request_body(request.request_body)
            return self.on_other(phase)
        except ClientError as e:  # already counted by the core
            self.done = True
            return immediate(e)
        except Exception as e:
            log.exception("ext_proc %s phase failed (%s)", phase, type(e).__name__)
            self.core.count_internal(self.api)
            self.done = True
            return immediate(errors.INTERNAL)

    def on_request_headers(self, msg: pb.HttpHeaders) -> pb.ProcessingResponse:
        h = _headers_map(msg.headers)
        self.core.check_client(h.get(":path", ""), h)
        length = h.get("content-length")
        checked = self.core.check_headers(
            method=h.get(":method", ""),
            path=h.get(":path", ""),
            content_type=h.get("content-type"),
            content_length=int(length) if length and length.isdigit() else None,
            content_encoding=h.get("content-encoding"),
        )
        api = None
        if checked is not None:
            api, self.coding = checked
        if api is not None and msg.end_of_stream:
            # A POST to an LLM path without a body: there is nothing to route.
            error = errors.INVALID_JSON.with_message("request body is empty")
            self.core.count_rejection(api, error)
            raise error
        self.api = api
        self.request_id = h.get("x-request-id")
        if api is None:
            # Not ours to route: closing the stream now also spares Envoy sending the body.
            self.done = True
            self.core.count_unrouted()
        if ROUTE_HEADER not in h and api is not None:
            return pb.ProcessingResponse(request_headers=pb.HeadersResponse())  # body phase routes
        # The route may have been picked with a client's copy in place, here or before an
        # earlier filter (the x-irtgate-* strip) removed it: drop it and pick again. For a
        # request irtgate does not route this is the last chance to do so.
        # (Envoy clears the route cache only along with a header mutation, so the removal is
        # sent even when the header is already gone.)
        common = pb.CommonResponse(clear_route_cache=True)
        common.header_mutation.remove_headers.append(ROUTE_HEADER)
        return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common))

    async def on_request_body(self, msg: pb.HttpBody) -> pb.ProcessingResponse:
        # BUFFERED: the whole body is this one message, and the response side is SKIP/NONE.
        self.done = True
        if self.api is None:  # counted at the headers, where the stream normally ends
            return pb.ProcessingResponse(request_body=pb.BodyResponse())
        verdict = await self.core.decide(self.api, msg.body, self.coding, self.request_id)
        common = pb.CommonResponse(clear_route_cache=True)
        mutation = common.header_mutation
        mutation.set_headers.append(header(ROUTE_HEADER, verdict.upstream))
        for key, value in verdict.set_headers.items():
            if key.lower() != ROUTE_HEADER:  # a policy never overrides the routing header
                mutation.set_headers.append(header(key, value))
        mutation.remove_headers.extend(
            h for h in verdict.remove_headers if h.lower() != ROUTE_HEADER
        )
        if verdict.new_body is not None:
            common.body_mutation.body = verdict.new_body
            # Envoy rejects a mutated body whose length disagrees with content-length.
            mutation.set_headers.append(header("content-length", str(len(verdict.new_body))))
            if self.coding != IDENTITY:
                # The rewritten body is plain JSON; a kept gzip label would break the upstream.
                mutation.remove_headers.append("content-encoding")
        return pb.ProcessingResponse(
            request_body=pb.BodyResponse(response=common), dynamic_metadata=_metadata(verdict)
        )

    def on_other(self, phase: str | None) -> pb.ProcessingResponse:
        # Not requested by our Envoy config; answer "continue" so a config change that
        # enables a phase does not hang requests.
        empty: dict[str | None, Any] = {
            "response_headers": pb.ProcessingResponse(response_headers=pb.HeadersResponse()),
            "response_body": pb.ProcessingResponse(response_body=pb.BodyResponse()),
            "request_trailers": pb.ProcessingResponse(request_trailers=pb.TrailersResponse()),
            "response_trailers": pb.ProcessingResponse(response_trailers=pb.TrailersResponse()),
        }
        if phase not in empty:
            raise ValueError(f"unexpected ext_proc message {phase!r}")
        response: pb.ProcessingResponse = empty[phase]
        return response


class ExternalProcessor(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def Process(
        self,
        request_iterator: AsyncIterator[pb.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ProcessingResponse]:
        gauge = self.core.metrics.streams_active
        gauge.inc()
        processor = StreamProcessor(self.core)
        try:
            async for request in request_iterator:
                yield await processor.handle(request)
                if processor.done:
                    # Close the stream (status OK) as soon as the decision is sent: Envoy then
                    # ignores it for the rest of the request. Left open, it would last as long
                    # as the response, and a restart or crash of irtgate would cut every SSE
                    # stream in flight (fail-closed mode turns a broken stream into a reset).
                    return
        finally:
            gauge.dec()
