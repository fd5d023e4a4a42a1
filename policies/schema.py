"""The policy JSON Schema, generated from :mod:`irtgate.policies.spec` (the same definitions
the loader validates with). ``policies/schema.json`` is this output, committed for editors;
a test keeps it current (regenerate: ``irtgate policy schema > policies/schema.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from irtgate.policies.spec import Policy

SCHEMA_FILE = Path(__file__).with_name("schema.json")


def policy_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://irtgate.dev/schemas/policy-v1.json",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, sort_keys=True) + "\n"
