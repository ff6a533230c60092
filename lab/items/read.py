"""Reading an item: checked first (lab/items/check.py), then its audio and its metadata as the labs read them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .check import check_item
from .format import normalized


def read_item(json_path) -> tuple[np.ndarray, dict]:
    """Read an item as (float32 mono audio, metadata): checked first (lab.items.check), a recording with
    several channels mixed down (their mean), the metadata normalized (see `normalized`), with
    `sample_rate`, `channels` and `duration` taken from the sound file.

    Raises ValueError naming the file, field and problem of everything that is wrong with it."""
    import soundfile as sf

    path = Path(json_path)
    problems = check_item(path)
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s) in this item:\n" + "\n".join(map(str, problems)))
    meta = json.loads(path.read_text())
    audio, rate = sf.read(path.parent / meta["audio"], dtype="float32", always_2d=True)
    out = normalized(meta)
    out.update(sample_rate=int(rate), channels=int(audio.shape[1]), duration=audio.shape[0] / rate)
    return audio.mean(1) if audio.shape[1] > 1 else audio[:, 0], out


def read_meta(json_path) -> dict:
    """An item's metadata alone, checked and normalized, the sound file described but not read (a long
    recording stays on disk; lab.items.blocks reads it a block at a time)."""
    import soundfile as sf

    path = Path(json_path)
    problems = check_item(path)
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s) in this item:\n" + "\n".join(map(str, problems)))
    meta = json.loads(path.read_text())
    info = sf.info(str(path.parent / meta["audio"]))
    out = normalized(meta)
    out.update(sample_rate=int(info.samplerate), channels=int(info.channels), duration=info.frames / info.samplerate)
    return out
