"""irtgate's own gRPC API (Decide) and the script that generates its Python code."""
