"""irtgate: an IRT-based LLM router beside Envoy (ext_proc).

The repository keeps one top-level folder per part (``server/``, ``signals/``, ``plugins/``,
``policies/``, ``proto/``, ``lab/``); this package links them under one import name so that the
installed wheel adds a single top-level package and collides with nobody (``proto`` is also
proto-plus's import name). Layers, lowest first: proto, signals, plugins, policies, server, lab.
A module imports only from its own layer or those below it (tests/test_layering.py).
"""
