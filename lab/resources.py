"""Files shipped inside the package: the embedded models, the sample clips, the teaching notebooks.

    lab/data/models/<name>/   config.json, model.safetensors, tokenizer.model (+ MODEL_CARD.md)
    lab/data/samples/         NAME.wav + NAME.json (reference word alignments; python -m lab.synth.samples)
    lab/notebooks/            the course, *.ipynb

They are package data, found with importlib.resources, so a git checkout and an installed wheel find them
the same way. They must be real files on disk: safetensors memory-maps the weights and sentencepiece opens
its model by path, so a package imported from a zip archive is refused with a clear error.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(*parts: str) -> Path:
    """The path of a file or folder shipped in the package (which need not exist: callers check)."""
    root = files("lab")
    if not isinstance(root, Path):
        raise RuntimeError(f"dsm-lab is imported from an archive ({root}); its models and samples must be "
                           "files on disk: install it with pip (which unpacks the wheel)")
    return root.joinpath(*parts)


def models_root() -> Path:
    return package_path("data", "models")


def samples_root() -> Path:
    return package_path("data", "samples")


def notebooks_root() -> Path:
    return package_path("notebooks")
