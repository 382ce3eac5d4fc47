"""Data pipelines: local readers for real data a user already has on disk (Fashion-MNIST offline by default)."""
