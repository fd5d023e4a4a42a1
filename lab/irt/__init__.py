"""Training and evaluating the IRT router: routing data, the model, export, baselines, reports."""
