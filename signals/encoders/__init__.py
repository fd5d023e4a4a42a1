"""Text encoders derived from all-MiniLM-L6-v2: an ONNX transformer and static embeddings."""
