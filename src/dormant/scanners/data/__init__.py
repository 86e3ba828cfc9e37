"""Data-level scanners: training and fine-tuning data."""

from . import mining  # noqa: F401  (registers trigger-mining)
