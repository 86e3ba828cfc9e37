"""Subjects: what a scanner examines (datasets now; models and agents later)."""

from .dataset import Batch, TextDataset

__all__ = ["Batch", "TextDataset"]
