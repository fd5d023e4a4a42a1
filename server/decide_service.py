"""The ``irtgate.v1.Decide`` RPC: the ext_proc decision for a body, without proxying it."""

from __future__ import annotations

from typing import Final

import grpc

from irtgate.proto import decide_pb2, decide_pb2_grpc
from irtgate.server.core import GatewayCore
from irtgate.server.parse import api_for_path
from irtgate.signals import errors
from irtgate.signals.errors import ClientError

_STATUS: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_status(error: ClientError) -> grpc.StatusCode:
    return _STATUS.get(error.status, grpc.StatusCode.INTERNAL)


class DecideService(decide_pb2_grpc.DecideServicer):
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def Decide(
        self, request: decide_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> decide_pb2.DecideResponse:
        api = api_for_path(request.path)
        try:
            if api is None:
                raise errors.INVALID_REQUEST.with_message(
                    "path must be one of /v1/chat/completions, /v1/responses, /v1/messages"
                )
            verdict = await self.core.decide(api, request.body)
        except ClientError as e:
            # The details carry the same JSON body an HTTP client would get.
            await context.abort(grpc_status(e), e.body().decode())
            raise AssertionError("unreachable") from None  # abort() always raises
        return decide_pb2.DecideResponse(
            outcome=verdict.outcome,
            model=verdict.model,
            budget=verdict.budget,
            upstream=verdict.upstream,
            decision=verdict.decision,
            reason=verdict.reason,
            config=verdict.config,
            body=verdict.new_body or b"",
            explanation={k: _render(v) for k, v in verdict.explanation.items()},
        )


def _render(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)
