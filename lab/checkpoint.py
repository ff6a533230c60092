"""Model folders: load and save, laid out like a Hugging Face model repo.

    lab/data/models/dsm-tiny-en/     (package data: lab.resources)
      config.json          {"format": "dsm-lab", "config": {...DSMConfig...}, "tokenizer": "tokenizer.model"}
      model.safetensors
      tokenizer.model      sentencepiece

`load()` takes nothing (the embedded default), a folder, a model's folder name (looked up in $DSM_LAB_MODELS,
then among the embedded models), or a Hugging Face repo id (cache first, HF_HUB_OFFLINE honoured). A folder
with Kyutai's config.json is handed to lab.kyutai. Weights are read from safetensors only: pickle formats can
run code when loaded, so they are refused.
Every problem raises `CheckpointError` naming the file and, where it applies, the tensor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .errors import CheckpointError, diagnose_safetensors
from .model import DSM, DSMConfig
from .resources import models_root
from .tokenizer import Tokenizer

MODELS_DIR = models_root()  # the embedded models, shipped inside the package
DEFAULT_MODEL = "dsm-tiny-en"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def model_dirs() -> list[Path]:
    """Where models are found by name, in order: the folders of $DSM_LAB_MODELS (os.pathsep-separated), then
    the embedded models. A folder there named like an embedded model (e.g. a retrained dsm-tiny-en) wins."""
    extra = [Path(p) for p in os.environ.get("DSM_LAB_MODELS", "").split(os.pathsep) if p]
    return [*extra, MODELS_DIR]


def find_model(name: str) -> Path | None:
    """The first folder named `name` holding a config.json along model_dirs(), or None."""
    return next((root / name for root in model_dirs() if (root / name / "config.json").is_file()), None)


def default_model_dir() -> Path:
    """The embedded default (dsm-tiny-en) along model_dirs(); else the first model found there."""
    preferred = find_model(DEFAULT_MODEL)
    if preferred is not None:
        return preferred
    found = [p.parent for root in model_dirs() for p in sorted(root.glob("*/config.json"))]
    if not found:
        searched = ", ".join(str(root) for root in model_dirs())
        raise CheckpointError(f"no embedded model: expected {DEFAULT_MODEL}/config.json in {searched}")
    return found[0]


def resolve(name: str | os.PathLike | None) -> Path:
    """A folder path, a model's folder name, or a Hugging Face repo id resolved to its local snapshot."""
    if name is None:
        return default_model_dir()
    path = Path(name)
    if path.is_dir():
        return path
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: pickle checkpoints ({path.suffix}) are refused, they can run "
                              "arbitrary code when loaded; convert the weights to safetensors")
    if path.is_file():
        raise CheckpointError(f"{path}: expected a model folder (config.json + *.safetensors), got a file")
    by_name = find_model(str(name)) if path.name == str(name) else None  # a model by name: "dsm-tiny-en-d2"
    if by_name is not None:
        return by_name
    if str(name).count("/") == 1 and not str(name).startswith((".", "/")):
        from .hub import snapshot

        return snapshot(str(name))
    raise CheckpointError(f"{name}: no such model folder, and not a Hugging Face repo id (org/name)")


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json; a model folder holds config.json, "
                              "model.safetensors and a tokenizer .model")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors ({diagnose_safetensors(path)}): {e}") from e


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path,
               ignore_missing: tuple[str, ...] = ()):
    """Copy tensors into the model after checking names and shapes, naming any mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors and not k.startswith(ignore_missing)]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(f"{path}: missing tensor {missing[0]!r}" +
                              (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensor {unexpected[0]!r}" +
                              (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(value.shape)}, the config "
                                  f"needs {tuple(expected[name].shape)}")
    model.load_state_dict(tensors, strict=False)


def load(name: str | os.PathLike | None = None, dtype: torch.dtype | str = torch.float32,
         device: str = "cpu", alignment: str = "training") -> DSM:
    """Load a model: None (the embedded default), a folder, or a Hugging Face repo id."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if alignment not in ("training", "scripts"):
        raise ValueError(f"alignment must be 'training' or 'scripts', got {alignment!r}")
    folder = resolve(name)
    raw = read_config(folder)
    if raw.get("format") != "dsm-lab":
        from .kyutai import is_kyutai_config, load_kyutai

        if is_kyutai_config(raw):
            return load_kyutai(folder, raw, dtype=dtype, device=device, alignment=alignment)
        raise CheckpointError(f"{folder / 'config.json'}: neither a dsm-lab nor a Kyutai STT config")
    try:
        cfg = DSMConfig.from_dict(raw["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: bad model config: {e}") from e
    for stray in folder.iterdir():
        if stray.suffix in PICKLE_SUFFIXES:
            raise CheckpointError(f"{stray}: pickle checkpoints are refused; safetensors only")
    model = DSM(cfg)
    weights = folder / raw.get("weights", "model.safetensors")
    load_state(model, read_safetensors(weights), weights)
    tok_path = folder / raw.get("tokenizer", "tokenizer.model")
    if not tok_path.is_file():
        raise CheckpointError(f"tokenizer file not found: {tok_path}")
    try:
        model.tokenizer = Tokenizer(tok_path, pad_id=cfg.pad_id, epad_id=cfg.epad_id)
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    if model.tokenizer.vocab_size > cfg.text_vocab_out:
        raise CheckpointError(f"{tok_path}: tokenizer has {model.tokenizer.vocab_size} pieces, more than "
                              f"the model's text vocabulary ({cfg.text_vocab_out})")
    model.alignment, model.source = alignment, str(folder)
    return model.to(device=device, dtype=dtype).eval()


def save(model: DSM, folder: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None,
         extra: dict | None = None, weights_dtype: torch.dtype | None = None) -> Path:
    """Write a model folder: config.json, model.safetensors and the tokenizer beside them.

    `weights_dtype` (e.g. torch.float16) stores the weights smaller; `load()` casts them to the dtype asked.
    """
    import shutil

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(weights_dtype or v.dtype).contiguous().cpu()
               for k, v in model.state_dict().items() if not k.startswith("mimi.")}
    save_file(tensors, str(folder / "model.safetensors"))
    tokenizer_path = tokenizer_path or (model.tokenizer.path if model.tokenizer else None)
    config = {"format": "dsm-lab", "config": model.cfg.to_dict(), "weights": "model.safetensors",
              "tokenizer": "tokenizer.model", **(extra or {})}
    if tokenizer_path and Path(tokenizer_path).resolve() != (folder / "tokenizer.model").resolve():
        shutil.copyfile(tokenizer_path, folder / "tokenizer.model")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
