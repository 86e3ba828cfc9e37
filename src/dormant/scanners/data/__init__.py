"""Data-level scanners: training and fine-tuning data."""
