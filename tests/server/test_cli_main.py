from __future__ import annotations

import subprocess
import sys

import pytest

from irtgate.server.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "version" in out and "Usage" in out


def test_version_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"


def test_unknown_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) != 0


def test_help_does_not_import_heavy_modules() -> None:
    # `irtgate --help` must stay fast: no onnxruntime, torch or grpc at import time.
    code = (
        "import sys; from irtgate.server.cli import main; main(['--help']);"
        "bad=[m for m in ('onnxruntime','torch','grpc','matplotlib') if m in sys.modules];"
        "print('HEAVY=' + ','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout + "\n", out.stdout
    assert "version" in out.stdout
