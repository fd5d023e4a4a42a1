"""Policies: operator YAML compiled into an immutable snapshot that decides each request."""
