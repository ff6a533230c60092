"""Hugging Face Hub: model repos to local folders, the cache first, only the files a model needs.

    lab.load("kyutai/stt-1b-en_fr")          # or: dsm-lab download kyutai/stt-1b-en_fr

A repo is looked up in the local cache first; only when a file is missing there is it downloaded, with
huggingface_hub's progress bars. With HF_HUB_OFFLINE=1, or when the hub cannot be reached, only the cache is
used, and a repo that is not cached gives an error saying so (and how to fetch it: `dsm-lab download REPO`).
Only a cache miss means "not cached": a cache that cannot be read, or a bad repo id, is reported as itself.

What is fetched: never pickle weights, never the whole repo. For Kyutai's STT repos, exactly the four files
their config.json names (Kyutai's repos hold other things too, e.g. a README and .gitattributes):

    repo                          files (Mimi: mimi-pytorch-e351c8d8@125.safetensors in all three)
    kyutai/stt-1b-en_fr           config.json  model.safetensors  Mimi  tokenizer_en_fr_audio_8000.model
    kyutai/stt-1b-en_fr-candle    config.json  model.safetensors  Mimi  tokenizer_en_fr_audio_8000.model
    kyutai/stt-2.6b-en            config.json  model.safetensors  Mimi  tokenizer_en_audio_4000.model

The -candle repo is the one Kyutai's Rust server and stt-rs read; its weights carry the 4 end-of-turn (VAD)
heads, and its config.json may omit keys the Rust code hard-codes (hidden_scale, extra heads): lab.kyutai reads
those off the weights. Any other repo id: config.json first, then the files a Kyutai config names, or every
json/safetensors/model/md file for a dsm-lab model folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Only what a streaming STT model needs: never pickle weights, never the whole repo history.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.md"]
MIMI = "mimi-pytorch-e351c8d8@125.safetensors"
KYUTAI_REPOS = {
    "kyutai/stt-1b-en_fr": ["config.json", "model.safetensors", MIMI, "tokenizer_en_fr_audio_8000.model"],
    "kyutai/stt-1b-en_fr-candle": ["config.json", "model.safetensors", MIMI, "tokenizer_en_fr_audio_8000.model"],
    "kyutai/stt-2.6b-en": ["config.json", "model.safetensors", MIMI, "tokenizer_en_audio_4000.model"],
}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def files_for(config: dict) -> list[str] | None:
    """The files a Kyutai STT config.json names (None for a config that is not Kyutai's)."""
    from .kyutai import DEFAULT_MIMI, DEFAULT_TOKENIZER, DEFAULT_WEIGHTS, is_kyutai_config

    if config.get("format") == "dsm-lab" or not is_kyutai_config(config):
        return None
    return ["config.json", config.get("moshi_name") or DEFAULT_WEIGHTS, config.get("mimi_name") or DEFAULT_MIMI,
            config.get("tokenizer_name") or DEFAULT_TOKENIZER]


def _missing(folder: Path, patterns: list[str]) -> list[str]:
    """Exact file names among `patterns` that the folder lacks (wildcards cannot be checked)."""
    return [p for p in patterns if not any(c in p for c in "*?[") and not (folder / p).is_file()]


def _fetch(repo_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    from .errors import CheckpointError

    try:
        local = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
        missing = _missing(local, patterns)
        if not missing:
            return local
    except LocalEntryNotFoundError:  # not in the cache: the one error that means "download it"
        local, missing = None, patterns
    except HFValidationError as e:
        raise CheckpointError(f"{repo_id}: no such model folder, and not a valid Hugging Face repo id ({e})") from e
    except OSError as e:  # a cache that cannot be read (a broken ref, permissions): downloading would not help
        raise CheckpointError(f"{repo_id}: the Hugging Face cache at {constants.HF_HUB_CACHE} cannot be read "
                              f"({type(e).__name__}: {e}); repair or delete that repo's folder there") from e
    if offline():
        what = "not in the Hugging Face cache" if local is None else f"incomplete in the cache (no {missing[0]})"
        raise CheckpointError(f"{repo_id}: {what} and HF_HUB_OFFLINE is set; run `dsm-lab download {repo_id}` "
                              "where the hub can be reached")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns))  # tqdm progress bars by default
    except Exception as e:  # connection errors come in many classes
        raise CheckpointError(f"{repo_id}: not in the Hugging Face cache and the download failed "
                              f"({type(e).__name__}: {e}); check the repo id and the network") from e
    missing = _missing(folder, patterns)
    if missing:
        raise CheckpointError(f"{repo_id}: the repo has no file {missing[0]!r} (downloaded into {folder})")
    return folder


def snapshot(repo_id: str, allow_patterns: list[str] | None = None) -> Path:
    """Local folder of a hub repo holding what a model needs: from the cache if it is all there, else
    downloaded (progress bars shown)."""
    if allow_patterns:
        return _fetch(repo_id, allow_patterns)
    # Known repos in one go; then, for them as for any repo, what config.json really names is what counts.
    folder = _fetch(repo_id, KYUTAI_REPOS.get(repo_id, ["config.json"]))
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        config = {}  # lab.load reports a bad config.json with its path
    needed = (files_for(config) if isinstance(config, dict) else None) or ALLOW_PATTERNS
    if needed != ALLOW_PATTERNS and not _missing(folder, needed):
        return folder
    return _fetch(repo_id, needed)


def run_cli(args) -> int:
    """`dsm-lab download REPO`: fetch (or find in the cache) what `lab.load(REPO)` needs; list it."""
    folder = snapshot(args.repo)
    print(folder)
    for f in sorted(folder.iterdir()):
        if f.is_file():
            print(f"  {f.stat().st_size / 2**20:10.1f} MiB  {f.name}")
    return 0
