"""Plugins: per-decision request transformations (PII, system prompt, headers, budgets)."""
