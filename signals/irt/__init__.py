"""The IRT router: routing data, the IRT model, selection rules, metrics and evaluation.

Submodules are imported on demand; importing this package loads nothing heavy.
"""
