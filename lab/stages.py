"""Training in stages: a stage starts from a model folder (`dsm-lab train --init-from`), with a fresh optimiser
and schedule, and the folder it writes says how every stage before it was trained.

`make model` is two stages (the grammar-rich corpus, then more random word orders); the delay sweep is one
more stage from the shipped model at another delay (`--change-delay`). A stage is a model folder, so the
shipped model is itself the checkpoint of the next stage.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .compute import training_precision


def read_init(cfg) -> dict:
    """The model a stage continues from (`cfg.init_from`, a folder or name) and its tokenizer's path."""
    from .checkpoint import load, read_config, resolve

    folder = resolve(cfg.init_from)
    model = load(folder)
    if model.cfg.delay_frames != cfg.delay_frames and not cfg.change_delay:
        raise ValueError(f"--init-from {folder}: its delay is {model.cfg.delay_frames} frames but this training "
                         f"asks for --delay-frames {cfg.delay_frames} (add --change-delay to move the delay)")
    raw = read_config(folder)
    return {"model": model, "tokenizer": folder / raw.get("tokenizer", "tokenizer.model")}


def stage_model_config(start, cfg):
    """The architecture of a stage: its start's, at the delay the stage trains at (the weights fit any delay;
    only the text targets move)."""
    if start.cfg.delay_frames == cfg.delay_frames:
        return start.cfg
    return replace(start.cfg, delay_frames=cfg.delay_frames, text_delay_s=None)


def prior_stages(cfg) -> list[dict]:
    """The stages recorded in the start's folder (a record from before stages were kept: one stage)."""
    if not cfg.init_from:
        return []
    from .checkpoint import read_config, resolve

    record = read_config(resolve(cfg.init_from)).get("training", {})
    return record.get("stages") or [{k: record[k] for k in ("steps", "minutes", "seed") if k in record}]


def training_record(cfg, step: int, elapsed: float) -> dict:
    """What a model folder says about its training: totals over all stages, and each stage."""
    this = {"steps": step, "minutes": round(elapsed / 60, 1), "seed": cfg.seed,
            "corpora": [Path(c).name for c in (cfg.corpus, *cfg.more_corpora)], "delay_frames": cfg.delay_frames,
            "precision": training_precision(cfg.precision)}
    stages = prior_stages(cfg) + [this]
    return {"steps": sum(s.get("steps", 0) for s in stages),
            "minutes": round(sum(s.get("minutes", 0) for s in stages), 1),
            "seed": cfg.seed, "delay_frames": cfg.delay_frames, "stages": stages}
