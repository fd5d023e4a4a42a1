"""The short, explicit list of errors a client may see.

Anything that is not a :class:`ClientError` is an internal error: it is logged and counted
and the client gets the generic ``internal_error`` below, never a stack trace.
Bodies follow the OpenAI error shape ``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ClientError(Exception):
    status: int
    type: str
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps(
            {"error": {"message": self.message, "type": self.type, "code": self.code}},
            separators=(",", ":"),
        ).encode()

    def with_message(self, message: str) -> ClientError:
        return ClientError(self.status, self.type, self.code, message)


INVALID_JSON: Final = ClientError(
    400, "invalid_request_error", "invalid_json", "body is not valid JSON"
)
INVALID_REQUEST: Final = ClientError(
    400, "invalid_request_error", "invalid_request", "invalid request"
)
UNSUPPORTED_MEDIA_TYPE: Final = ClientError(
    415, "invalid_request_error", "unsupported_media_type", "content-type must be application/json"
)
BODY_TOO_LARGE: Final = ClientError(
    413, "invalid_request_error", "request_too_large", "request body exceeds the configured limit"
)
UNKNOWN_MODEL: Final = ClientError(400, "invalid_request_error", "model_not_found", "unknown model")
POLICY_BLOCKED: Final = ClientError(
    403, "permission_error", "policy_blocked", "request blocked by policy"
)
NO_CANDIDATE: Final = ClientError(
    503, "server_error", "no_candidate", "no configuration satisfies the routing policy"
)
# The request's API (chat, responses, messages) is spoken by none of the upstreams that
# could serve it; translating between APIs is not done.
API_NOT_SERVED: Final = ClientError(
    400, "invalid_request_error", "api_not_served", "no upstream for this request speaks its API"
)
INVALID_API_KEY: Final = ClientError(
    401, "invalid_request_error", "invalid_api_key", "a valid gateway API key is required"
)
INTERNAL: Final = ClientError(500, "server_error", "internal_error", "internal error in irtgate")
DECISION_TIMEOUT: Final = ClientError(
    504, "server_error", "decision_timeout", "irtgate did not decide within the message timeout"
)

ALL: Final = (
    INVALID_JSON,
    INVALID_REQUEST,
    UNSUPPORTED_MEDIA_TYPE,
    BODY_TOO_LARGE,
    UNKNOWN_MODEL,
    POLICY_BLOCKED,
    NO_CANDIDATE,
    API_NOT_SERVED,
    INVALID_API_KEY,
    INTERNAL,
    DECISION_TIMEOUT,
)
