"""The import graph: layers hold, there are no import loops, and serving never loads the lab.

Layers, lowest first: proto, signals, plugins, policies, server, lab. A module may import its
own layer or lower ones, at module level or inside a function alike (grimp sees both).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

LAYERS = ["lab", "server", "policies", "plugins", "signals", "proto"]  # highest first
CORE = [f"irtgate.{p}" for p in LAYERS if p != "lab"]
# What only the lab (or re-exporting artifacts) may use.
LAB_ONLY = ["sklearn", "scipy", "matplotlib", "tqdm", "torch", "transformers", "model2vec"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("irtgate", include_external_packages=True)


def test_every_folder_is_a_layer(graph: grimp.ImportGraph) -> None:
    children = {m.split(".")[1] for m in graph.find_children("irtgate")}
    assert children == set(LAYERS)


def test_no_module_imports_a_layer_above_it(graph: grimp.ImportGraph) -> None:
    illegal = graph.find_illegal_dependencies_for_layers(layers=[f"irtgate.{p}" for p in LAYERS])
    assert not illegal, [f"{d.importer} -> {d.imported}: {d.routes}" for d in illegal]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    # Tarjan's strongly connected components over irtgate's own modules.
    mods = sorted(m for m in graph.modules if m.startswith("irtgate."))
    edges = {
        m: sorted(x for x in graph.find_modules_directly_imported_by(m) if x.startswith("irtgate."))
        for m in mods
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in mods:
        if m not in index:
            visit(m)
    return out


def test_no_import_loops(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    class Loop:
        modules = frozenset({"irtgate.a", "irtgate.b", "irtgate.c"})

        def find_modules_directly_imported_by(self, m: str) -> set[str]:
            return {"irtgate.a": {"irtgate.b"}, "irtgate.b": {"irtgate.a"}, "irtgate.c": set()}[m]

    assert _cycles(Loop()) == [["irtgate.a", "irtgate.b"]]  # type: ignore[arg-type]


@pytest.mark.parametrize("dep", LAB_ONLY)
def test_serving_core_never_imports_lab_dependencies(graph: grimp.ImportGraph, dep: str) -> None:
    if dep not in graph.modules:
        return  # nothing in irtgate imports it at all
    for pkg in CORE:
        assert not graph.chain_exists(importer=pkg, imported=dep, as_packages=True), (
            pkg,
            dep,
            graph.find_shortest_chain(importer=pkg, imported=dep),
        )


_PROBE = textwrap.dedent(
    """
    import sys
    from irtgate.server import cli
    import irtgate.server.app, irtgate.server.extproc, irtgate.server.decide_service
    codes = [
        cli.main(["policy", "check", "policies/default.yaml"]),
        cli.main(["route", "What is 2 + 2?"]),
        cli.main(["router", "show"]),
        cli.main(["envoy-config"]),
        cli.main(["serve", "--help"]),
    ]
    heavy = {LAB_ONLY!r}
    loaded = sorted(
        m for m in sys.modules
        if m.startswith("irtgate.lab") or m.split(".")[0] in heavy
    )
    print("CODES", codes)
    print("LOADED", loaded)
    """
)


def test_serving_entry_points_load_no_lab_module() -> None:
    """Serve, route, explain and check policies: nothing of the lab is imported."""
    probe = _PROBE.replace("{LAB_ONLY!r}", repr(LAB_ONLY))
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(
        line.split(" ", 1) for line in out.stdout.splitlines() if line[:5] in ("CODES", "LOADE")
    )
    assert lines["CODES"] == "[0, 0, 0, 0, 0]", out.stdout[-2000:] + out.stderr[-2000:]
    assert lines["LOADED"] == "[]"


_BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sklearn", "scipy", "matplotlib"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Block())
    import importlib.util
    real = importlib.util.find_spec
    def find_spec(name, package=None):
        if name.split(".")[0] in ("sklearn", "scipy", "matplotlib"):
            return None
        return real(name, package)
    importlib.util.find_spec = find_spec
    from irtgate.server import cli
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--data", "x.jsonl", "--out", "r"],
        ["eval", "--data", "x.jsonl"],
        ["calibrate", "--router", "r", "--name", "n", "--answers", "a.jsonl"],
    ],
)
def test_lab_commands_name_the_extra_when_it_is_missing(args: list[str], tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _BLOCK, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "pip install 'irtgate[lab]'" in out.stderr
    assert "sklearn" in out.stderr and "Traceback" not in out.stderr
