"""Types that keep prompt text out of logs, metrics and headers.

Prompt text is wrapped in :class:`PromptText` as soon as it is parsed. Its ``str``/``repr``
never show the content, so an accidental ``log.info("%s", text)`` or f-string prints a
length marker instead. Code that genuinely needs the characters (tokenizers, PII
detectors, redaction) asks for them explicitly with :meth:`PromptText.reveal`, which is
easy to grep for in review.
"""

from __future__ import annotations

from typing import Final

_HIDDEN: Final = "<prompt text: {n} chars>"


class PromptText:
    """An immutable string whose content is only available through :meth:`reveal`."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"PromptText wraps str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PromptText is immutable")

    def reveal(self) -> str:
        """The raw text. Only for code that processes content, never for output."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PromptText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("PromptText", self._value))

    def __str__(self) -> str:
        return _HIDDEN.format(n=len(self._value))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be a side door out of the type; refuse it.
        raise TypeError("PromptText cannot be pickled")
