"""Generate (or check) the Python code for irtgate's protos.

    python -m irtgate.proto.generate          # rewrite proto/irtgate/v1/*_pb2*.py(i)
    python -m irtgate.proto.generate --check  # exit 1 if the committed code is stale

Uses grpc_tools.protoc with the mypy-protobuf plugins, so the output is typed. The
generated files are committed: installing irtgate never needs the code generator.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # proto/
# Sources live under their package path; the generated modules sit flat in proto/
# (``from proto import decide_pb2``), next to nothing but this script.
SOURCE_DIR = ROOT / "irtgate" / "v1"
PROTOS = sorted(p.name for p in SOURCE_DIR.glob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into ``out_dir``; return the generated files relative to it."""
    import grpc_tools  # type: ignore[import-untyped]
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent  # the venv's scripts, where mypy-protobuf lives
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{SOURCE_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *map(str, PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    files = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.name.endswith(SUFFIXES))
    for f in files:
        _fix_imports(out_dir / f)
    return files


def _fix_imports(path: Path) -> None:
    # protoc writes `import decide_pb2`; the modules are importable as `irtgate.proto.decide_pb2`.
    text = path.read_text()
    for proto in PROTOS:
        mod = proto.removesuffix(".proto") + "_pb2"
        text = text.replace(f"\nimport {mod} as ", f"\nfrom irtgate.proto import {mod} as ")
        text = text.replace(f"\nimport {mod}\n", f"\nfrom irtgate.proto import {mod}\n")
    if path.suffix == ".pyi":
        # mypy-protobuf's stubs trip two of our strict checks; the stubs are not ours to fix.
        text = '# mypy: disable-error-code="unused-ignore,overload-cannot-match"\n' + text
    path.write_text(text)


def stale_files() -> list[str]:
    """Generated files whose committed content differs from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        stale = []
        for rel in generate(out):
            committed = ROOT / rel
            if not committed.exists() or committed.read_bytes() != (out / rel).read_bytes():
                stale.append(str(rel))
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated proto code (run `make proto`):", *stale, sep="\n  ")
            return 1
        print("generated proto code is up to date")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for rel in generate(out):
            (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / rel, ROOT / rel)
            print(f"wrote proto/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
