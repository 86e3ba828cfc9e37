"""Adapters: the bridges between dormant and the frameworks that hold models and data.

Each adapter imports its heavy dependency lazily and, when it is missing, raises
:class:`~dormant.errors.MissingDependencyError` naming the extra to install.
"""

from .encoder import TextEncoder

__all__ = ["TextEncoder"]
