"""The ``headers`` plugin: set or remove request headers on the way to the upstream.

Header names are checked at load time: pseudo-headers, hop-by-hop and Envoy-internal
headers (``host``, ``content-length``, ``x-envoy-*`` ...) are refused, because Envoy's
header mutation rules would drop them silently or the request would break.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from irtgate.plugins.base import Plugin, PluginState, register
from irtgate.signals.base import Resources

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_FORBIDDEN = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "trailer",
    }
)


def _check_name(name: str) -> str:
    low = name.lower()
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if low in _FORBIDDEN or low.startswith(("x-envoy-", ":")):
        raise ValueError(f"header {name!r} may not be changed by a policy")
    return low


class HeadersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    set: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    remove: list[StrictStr] = Field(default_factory=list)

    @field_validator("set")
    @classmethod
    def _set_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            _check_name(name)
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: value has a control character")
        return v

    @field_validator("remove")
    @classmethod
    def _remove_names(cls, v: list[str]) -> list[str]:
        for name in v:
            _check_name(name)
        return v


class HeadersPlugin(Plugin):
    name: ClassVar[str] = "headers"

    def __init__(self, config: HeadersConfig) -> None:
        self.set = {k.lower(): v for k, v in config.set.items()}
        self.remove = tuple(n.lower() for n in config.remove)

    def apply(self, state: PluginState, slot: int) -> None:
        for name in self.remove:
            state.set_headers.pop(name, None)
            if name not in state.remove_headers:
                state.remove_headers.append(name)
        for name, value in self.set.items():
            state.set_headers[name] = value
            if name in state.remove_headers:
                state.remove_headers.remove(name)


@register("headers", HeadersConfig)
def _factory(config: Any, resources: Resources) -> Plugin:
    return HeadersPlugin(config)
