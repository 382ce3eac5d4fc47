"""Experiments: a reusable trainer and the small-scale layer comparison (the project's main job)."""
