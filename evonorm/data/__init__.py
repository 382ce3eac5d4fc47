"""Data pipelines: local readers for real data already on disk (offline Fashion-MNIST by default)."""
