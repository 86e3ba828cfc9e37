"""Scanners: offline algorithms that examine a subject and return findings.

Every scanner is a small class registered with :func:`register`; settings are keyword-only
``__init__`` arguments stored as attributes; work happens in ``scan(subject, context=...)``;
learned state ends in ``_``. See :class:`dormant.scanners.base.Scanner`.
"""

from .base import REGISTRY, ScanContext, Scanner, ScanResult, register
from .catalog import get_scanner

__all__ = ["REGISTRY", "ScanContext", "ScanResult", "Scanner", "get_scanner", "register"]
