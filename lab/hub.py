"""Hugging Face Hub: model repos to local folders, the cache first.

With HF_HUB_OFFLINE=1, or when the hub cannot be reached, only the local cache is used, and a repo that is
not cached gives an error saying so (and how to fetch it: `dsm-lab download REPO`).
"""

from __future__ import annotations

import os
from pathlib import Path

# Only what a streaming STT model needs: never pickle weights, never the whole repo history.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.md"]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def snapshot(repo_id: str, allow_patterns: list[str] | None = None) -> Path:
    """Local folder of a hub repo: from the cache if it is there, else downloaded (progress bar shown)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from .checkpoint import CheckpointError

    patterns = allow_patterns or ALLOW_PATTERNS
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if offline():
        raise CheckpointError(f"{repo_id}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                              f"run `dsm-lab download {repo_id}` where the hub can be reached")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:  # connection errors come in many classes
        raise CheckpointError(f"{repo_id}: not in the Hugging Face cache and the download failed "
                              f"({type(e).__name__}: {e}); check the repo id and the network") from e
