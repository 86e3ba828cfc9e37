"""Hugging Face Hub ids resolved through the local cache only (never downloaded).

Used by the adapters (model directories) and by the dataset subject (dataset snapshots).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputNotFoundError, MissingDependencyError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_model_dir(spec: str | os.PathLike[str]) -> Path:
    """A local model directory, or the cached snapshot of a Hugging Face model id."""
    text = os.fspath(spec)
    if text.startswith("hf://models/"):
        return hub_snapshot(text.removeprefix("hf://models/"), "model")
    p = Path(text)
    if not p.exists() and _HUB_ID.match(text) and not text.startswith((".", "/")):
        return hub_snapshot(text, "model", bare=True)
    return p


def hub_snapshot(repo_id: str, repo_type: str, *, bare: bool = False) -> Path:
    """The local Hugging Face cache snapshot of ``repo_id``; never downloads.

    Raises
    ------
    InputNotFoundError
        The id is not in the local cache; the message names the id and the cache directory.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        raise MissingDependencyError(
            f"Resolving the Hugging Face id {repo_id!r} needs huggingface_hub: "
            "pip install 'dormant[scale]'."
        ) from None
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, RepositoryNotFoundError, HFValidationError
        local = f"{repo_id} is not a local path, and the" if bare else "The"
        raise InputNotFoundError(
            f"{local} Hugging Face {repo_type} {repo_id!r} is not in the local cache "
            f"({HF_HUB_CACHE}); dormant reads the Hub cache only and does not download "
            f"(offline). Download it where there is a network (huggingface-cli download "
            f"{'--repo-type dataset ' if repo_type == 'dataset' else ''}{repo_id}) and copy "
            f"the cache here, or pass a local path. ({type(exc).__name__})"
        ) from None
