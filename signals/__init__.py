"""Signals: everything irtgate measures about a request. Signals score; policies decide."""
