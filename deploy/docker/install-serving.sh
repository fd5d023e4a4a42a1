#!/bin/sh
# The serving install, shared by deploy/Dockerfile and tests/deploy/test_image_install.py:
# build irtgate's wheel from a source tree and install it, without extras, into a new venv.
# The wheel carries the router and encoder artifacts as package data, so nothing is fetched
# at run time. Usage: install-serving.sh SRC_DIR VENV_DIR [WHEEL_DIR]
# PYTHON picks the interpreter the venv is made from (default: python3).
set -eu

src=$1
venv=$2
wheels=${3:-$(mktemp -d)}
python=${PYTHON:-python3}

"$python" -m venv "$venv"
"$venv/bin/pip" wheel --no-deps --wheel-dir "$wheels" "$src"
# The [project] dependencies only: never the lab, train or ner extras.
"$venv/bin/pip" install "$wheels"/irtgate-*.whl

# Serving only: refuse an install that pulled in the lab's or the trainer's packages.
"$venv/bin/python" - <<'PY'
import importlib.util
import sys

heavy = ("sklearn", "scipy", "matplotlib", "torch", "transformers", "model2vec")
found = [name for name in heavy if importlib.util.find_spec(name) is not None]
if found:
    sys.exit(f"the serving install contains lab/train packages: {found}")
PY

# Smoke check: the CLI starts, the shipped default policy compiles against the shipped
# router (so the artifacts are in the wheel), and the server modules import.
"$venv/bin/irtgate" --help >/dev/null
policy=$("$venv/bin/python" -c \
  "import irtgate.policies, pathlib; print(pathlib.Path(irtgate.policies.__file__).with_name('default.yaml'))")
"$venv/bin/irtgate" policy check "$policy"
"$venv/bin/python" -c "import irtgate.server.app, irtgate.server.extproc"
