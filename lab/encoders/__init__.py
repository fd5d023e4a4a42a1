"""Building the encoder artifacts: export, smoothing, window studies and the embedding cache."""
