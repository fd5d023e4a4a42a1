"""The offline lab: training, evaluation, baselines, export and quality reports.

Nothing in the serving core imports this package. Its dependencies (scikit-learn, scipy,
matplotlib, tqdm) come with the ``lab`` extra: ``pip install 'irtgate[lab]'``.
"""
