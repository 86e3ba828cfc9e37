"""Serve a local model the way hosted ones are served: an OpenAI-compatible chat API.

See :mod:`dormant.serve.openai_server` and the ``dormant serve-model`` command.
"""

from .openai_server import ChatServer, serve

__all__ = ["ChatServer", "serve"]
