"""Evidently drift reports and their machine-readable summary.

Filled by the data-quality pipeline.
"""
