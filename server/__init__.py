"""The gateway: Envoy ext_proc servicer, irtgate's Decide API, admin HTTP, CLI."""
