"""Subjects: what a scanner examines.

- :mod:`.dataset` — labelled and instruction datasets (:class:`TextDataset`);
- :mod:`.model` — text classifiers (``ClassifierModel``) and their clean data;
- :mod:`.agent` and :mod:`.probe` — a chat model or agent with its probe tasks
  (``ProbeSubject``), run in the honeytoken sandbox of :mod:`.sandbox`.

Subjects sit above the adapters (:mod:`dormant.adapters`) that load models and below the
scanners; see ARCHITECTURE.md, "Import layers".
"""

from .dataset import Batch, TextDataset

__all__ = ["Batch", "TextDataset"]
