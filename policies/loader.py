"""YAML text -> :class:`~irtgate.policies.spec.Policy`, with every error mapped to file:line: path.

PyYAML's composed node tree keeps a line for every key and value. We walk it once to
build ``path -> line`` (and to catch duplicate keys, which ``safe_load`` silently merges),
construct plain data from the same tree, and validate that with pydantic in one pass so
every schema error is reported together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from irtgate.policies.errors import PathT, PolicyError, Problem
from irtgate.policies.spec import Policy

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Source:
    """A parsed policy file: its data and where each path sits in the file."""

    file: str
    data: Any
    lines: dict[PathT, int]

    def line(self, path: PathT) -> int | None:
        """Line of ``path``, or of its closest ancestor present in the file."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def problem(self, path: PathT, message: str) -> Problem:
        return Problem(self.file, self.line(path), tuple(path), message)


# A policy is a few KB; this leaves room for large catalogs and keyword lists while keeping
# a hostile file from costing the server memory or time to read.
MAX_POLICY_BYTES = 1024 * 1024


def _walk(
    node: yaml.Node,
    path: PathT,
    lines: dict[PathT, int],
    dups: list[Problem],
    file: str,
    visited: set[int] | None = None,
    line: int | None = None,
) -> None:
    # An alias (*name) hands back the very node its anchor made, so a node met twice is an
    # alias. They are refused, and not followed: nested aliases ("billion laughs") expand
    # exponentially, and a 0.5 KB file took 8 GB to walk.
    visited = visited if visited is not None else set()
    if id(node) in visited:
        where = line if line is not None else node.start_mark.line + 1
        dups.append(
            Problem(file, where, path, "YAML aliases (*name) are not allowed; write the value out")
        )
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            line = k.start_mark.line + 1
            if key in seen:
                dups.append(
                    Problem(
                        file,
                        line,
                        (*path, key),
                        f"duplicate key {key!r} (first on line {seen[key]})",
                    )
                )
            else:
                seen[key] = line
            lines.setdefault((*path, key), line)
            _walk(v, (*path, key), lines, dups, file, visited, line)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault((*path, i), item.start_mark.line + 1)
            _walk(item, (*path, i), lines, dups, file, visited, line)


def parse_yaml(text: str, file: str) -> Source:
    """Parse YAML text; syntax errors, duplicate keys, aliases and texts over
    :data:`MAX_POLICY_BYTES` raise :class:`PolicyError`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyError([_too_big(file)])
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([Problem(file, 1, (), "the policy file is empty")])
        lines: dict[PathT, int] = {(): node.start_mark.line + 1}
        dups: list[Problem] = []
        _walk(node, (), lines, dups, file)
        if dups:
            raise PolicyError(dups)  # before constructing: aliases are never expanded
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(x for x in (e.context, e.problem) if x)
        raise PolicyError([Problem(file, line, (), f"YAML syntax: {msg}")]) from None
    except yaml.YAMLError as e:
        raise PolicyError([Problem(file, None, (), f"YAML: {e}")]) from None
    except RecursionError:
        raise PolicyError([Problem(file, None, (), "YAML: nested too deeply")]) from None
    finally:
        loader.dispose()
    return Source(file, data, lines)


def _too_big(file: str) -> Problem:
    return Problem(file, None, (), f"the policy file is larger than {MAX_POLICY_BYTES} bytes")


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


_ALIASES = {"not_": "not", "in_": "in"}


def _loc(data: Any, loc: tuple[Any, ...], missing: bool) -> PathT:
    """Pydantic's error location reduced to a path in the data.

    Union fields add the member type to the location (``budget.str``, ``budget.int``);
    those components do not index into the data and are dropped, except the last one of
    a "missing" error, which names the absent key.
    """
    out: list[str | int] = []
    cur = data
    for i, raw in enumerate(loc):
        part = _ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        in_map = isinstance(cur, dict) and part in cur
        if in_map or (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)):
            cur = cur[part]
            out.append(part)
        elif missing and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def validate_schema(src: Source) -> Policy:
    """Type-level validation of parsed data; all errors at once."""
    return validate_as(src, Policy, "a policy is a mapping (version, catalog, ...)")


def validate_as(src: Source, model: type[M], not_a_mapping: str) -> M:
    """Validate parsed data as ``model`` (a strict pydantic model); every error at once,
    each at its file:line: path. Other YAML files (the upstreams file) use it too."""
    if not isinstance(src.data, dict):
        raise PolicyError([src.problem((), not_a_mapping)])
    try:
        return model.model_validate(src.data)
    except ValidationError as e:
        merged: dict[PathT, list[str]] = {}
        for err in e.errors():
            path = _loc(src.data, tuple(err["loc"]), err["type"] == "missing")
            msgs = merged.setdefault(path, [])
            if (m := _message(err)) not in msgs:
                msgs.append(m)
        raise PolicyError([src.problem(p, "; or ".join(m)) for p, m in merged.items()]) from None


def load_source(path: Path | None) -> tuple[str, str]:
    """(file label, text); ``None`` is the embedded default policy."""
    if path is None:
        path = Path(__file__).with_name("default.yaml")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)  # never the whole of a huge or endless file
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyError([_too_big(str(path))])
        return str(path), raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([Problem(str(path), None, (), f"cannot read: {e}")]) from None
