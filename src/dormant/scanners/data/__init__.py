"""Data-level scanners: training and fine-tuning data."""

# importing the modules registers their scanners
from . import mining, representation  # noqa: F401
