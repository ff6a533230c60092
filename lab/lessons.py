"""How DSM learns, one item at a time: the tables behind notebook 00, computed with the trainer's own code.

    items = train.load_corpus(samples_dir(), max_seconds=10)      # the sample clips, as the trainer reads them
    target_table(items[0].words, tok, delay=6, n_steps=60)         # the delayed text stream, step by step
    forcing_table(target, tok, p=0.08)                             # teacher forcing: inputs, corrupted
    loss_table(model, batch, cfg)                                  # every token's loss and weight (PAD 0.3)
    run = train_tiny(items, tok, seconds=40)                       # a tiny model trained in the notebook

Everything here calls lab.train (`text_targets`, `eot_targets`, `corrupt_inputs`, `Batches`, `losses`): the
lesson shows what the embedded model was trained on, not a re-telling of it. Figures: lab.widgets.lesson_figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import train
from .config import FRAME_RATE

KINDS = ("EPAD", "piece", "PAD")


def sample_items(tokenizer, max_seconds: float = 10.0) -> list[train.Item]:
    """The sample clips as the trainer reads a corpus (lab.train.load_corpus), each word in its written form
    ("Paris.") when the tokenizer can write it, else as spoken ("paris"): a tokenizer trained without
    capitals would turn "P" into its unknown piece, which is also the EPAD id."""
    from .resources import samples_root

    items = train.load_corpus(samples_root(), max_seconds)
    texts = {w["written"]: w["text"] for p in sorted(samples_root().glob("*.json"))
             for w in json.loads(p.read_text())["words"] if "written" in w}
    return [train.Item(it.audio, [(writable(tokenizer, w, texts.get(w, w)), s, e) for w, s, e in it.words])
            for it in items]


def writable(tokenizer, written: str, spoken: str) -> str:
    """`written` if the tokenizer writes it without its unknown piece, else `spoken`."""
    return written if tokenizer.sp.unk_id() not in tokenizer.encode_word(written) else spoken


def target_table(words, tokenizer, delay: int, n_steps: int) -> pd.DataFrame:
    """One row a step of an item's text stream (lab.train.text_targets): the token, its piece, its kind
    (EPAD before a word, the word's pieces, PAD elsewhere), the word it belongs to, and for each word how
    many steps it was pushed back because the previous word had not finished ("collision")."""
    target, placed = train.text_targets(words, tokenizer, n_steps, delay)
    rows = [{"step": s, "time_s": round(s / FRAME_RATE, 2), "token": int(t), "piece": tokenizer.piece(int(t)),
             "kind": "EPAD" if t == tokenizer.epad_id else ("PAD" if t == tokenizer.pad_id else "piece"),
             "word": "", "spoken_frame": np.nan, "pushed_by": np.nan} for s, t in enumerate(target)]
    for (text, start, _), first_piece in zip(words, placed):
        # train.text_targets puts the EPAD at the word's start frame + D - 1 unless the step is taken
        wanted = int(start * FRAME_RATE) + delay
        for s in range(first_piece - 1, first_piece + len(tokenizer.encode_word(text))):
            rows[s].update(word=text, spoken_frame=int(start * FRAME_RATE), pushed_by=first_piece - wanted)
    return pd.DataFrame(rows)


def steps_of(item, delay: int) -> int:
    """Steps of an item's stream: its audio, then D + 2 more so that its last word's pieces fit."""
    return int(np.ceil(len(item.audio) / 24_000 * FRAME_RATE)) + delay + 2


def collision_words() -> list[tuple[str, float, float]]:
    """Three words spoken faster than the grid can write them (a word takes 1 + pieces steps, EPAD first):
    "timer" starts one frame after "a", whose EPAD and piece still occupy that step."""
    return [("set", 0.30, 0.45), ("a", 0.45, 0.50), ("timer", 0.50, 0.80)]


def forcing_table(target: np.ndarray, tokenizer, p: float, initial_id: int, seed: int = 0) -> pd.DataFrame:
    """Teacher forcing, step by step: the model is fed the *target* of the previous step (not its own
    output), and lab.train.corrupt_inputs swaps a share `p` of those inputs (text -> PAD: a missed piece;
    PAD -> a random piece: a hallucination), so that it learns to carry on after its own mistakes."""
    target = torch.tensor(np.asarray(target))[None]  # a copy: a table's column can be a read-only view
    clean = torch.cat([torch.full_like(target[:, :1], initial_id), target[:, :-1]], 1)
    gen = torch.Generator().manual_seed(seed)
    noisy = train.corrupt_inputs(clean, p, tokenizer.vocab_size, tokenizer.pad_id, gen)
    def name(t: int) -> str:
        return {initial_id: "<start>", tokenizer.pad_id: "PAD", tokenizer.epad_id: "EPAD"}.get(t) or tokenizer.piece(t)

    return pd.DataFrame({"step": np.arange(target.shape[1]),
                         "input (previous target)": [name(int(t)) for t in clean[0]],
                         "input, corrupted": [name(int(t)) for t in noisy[0]],
                         "corrupted": (noisy != clean)[0].numpy(), "target": [name(int(t)) for t in target[0]]})


def loss_table(model, batch, cfg: train.TrainConfig) -> pd.DataFrame:
    """Every text token of a batch: its target, kind, weight in the loss (PAD: cfg.pad_weight) and loss,
    with the model's inputs clean. Their weighted mean is lab.train.losses' text loss (the test checks)."""
    frames, text, _ = batch
    mcfg = model.cfg
    with torch.no_grad():
        audio_in = model.align_audio(model.frontend(frames), "training")
        text_in = torch.cat([torch.full_like(text[:, :1], mcfg.initial_text_id), text[:, :-1]], 1)
        logits, _ = model(audio_in, text_in)
        nll = F.cross_entropy(logits.flatten(0, 1), text.flatten(), reduction="none")
    t = text.flatten()
    kind = np.where(t == mcfg.epad_id, "EPAD", np.where(t == mcfg.pad_id, "PAD", "piece"))
    weight = np.where(t == mcfg.pad_id, cfg.pad_weight, 1.0)
    return pd.DataFrame({"item": np.repeat(np.arange(text.shape[0]), text.shape[1]),
                         "step": np.tile(np.arange(text.shape[1]), text.shape[0]), "target": t.numpy(),
                         "kind": kind, "weight": weight, "loss": nll.numpy()})


def weighted_loss(table: pd.DataFrame) -> float:
    """The trainer's text loss from a loss_table: sum(weight x loss) / sum(weight) (cross-entropy with
    class weights, as torch computes it)."""
    return float((table.weight * table.loss).sum() / table.weight.sum())


def loss_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per kind of token: its share of the tokens and its share of the loss's weight. PAD is most of the
    stream; down-weighted, it stops drowning the words."""
    g = table.groupby("kind").agg(tokens=("weight", "size"), weight=("weight", "sum"), mean_loss=("loss", "mean"))
    g["share_of_tokens"] = g.tokens / g.tokens.sum()
    g["share_of_weight"] = g.weight / g.weight.sum()
    return g.reindex([k for k in KINDS if k in g.index]).round(3)


# ------------------------------------------------------------------------------------------ a tiny model

TINY = dict(d_model=96, num_layers=2, num_heads=4, ffn_hidden=256, context=250)


@dataclass
class TinyRun:
    model: object  # the trained lab.model.DSM, tokenizer attached
    log: pd.DataFrame  # step, elapsed_s, text_loss, eot_loss, token_acc
    words: pd.DataFrame  # step, item, transcript: what it writes, as training goes


def tiny_config(tokenizer, delay: int = 6, batch_size: int = 4, **overrides) -> train.TrainConfig:
    """lab.train's config for a model small enough to learn a few clips within a minute on one thread:
    no augmentation beyond the trainer's gain, noise and shift, short silent tails."""
    return train.TrainConfig(corpus="", out="", delay_frames=delay, vocab_size=tokenizer.vocab_size,
                             batch_size=batch_size, max_tail_s=0.5, augment=False, **{**TINY, **overrides})


def transcripts(model, items) -> list[str]:
    """What the model writes for each item, streaming (model.transcribe: one frame at a time, then flush)."""
    model.eval()
    out = [model.transcribe((it.audio.astype(np.float32) / 32768.0, 24_000)).text for it in items]
    model.train()
    return out


def train_tiny(items, tokenizer, seconds: float = 40.0, max_steps: int = 2000, lr: float = 3e-3, seed: int = 0,
               snapshots=(0, 25, 50, 100, 200, 400, 800), held_out=(), cfg: train.TrainConfig | None = None,
               progress: bool = False) -> TinyRun:
    """Train a tiny DSM on `items` (lab.train.Item) for `seconds` or `max_steps`: the trainer's batches
    (train.Batches) and losses (train.losses, corrupted inputs included), AdamW, a short warm-up then a
    constant rate. At each step of `snapshots` (and at the end) it transcribes the items, then `held_out`
    (never trained on): the first words, and what a few clips cannot teach."""
    from .model import DSM

    cfg = cfg or tiny_config(tokenizer, seed=seed)
    torch.manual_seed(seed)
    model = DSM(cfg.model_config(tokenizer.vocab_size))
    model.tokenizer = tokenizer
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    batches, gen = train.Batches(items, tokenizer, cfg, seed=seed), torch.Generator().manual_seed(seed)
    log, words, step, start = [], [], 0, time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, desc="training", unit="step")
    model.train()
    while step < max_steps and time.perf_counter() - start < seconds:
        if step in snapshots:
            words += _snapshot(model, step, [*items, *held_out])
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50)
        text_loss, eot_loss, acc = train.losses(model, batches(), cfg, gen)
        opt.zero_grad(set_to_none=True)
        (text_loss + cfg.eot_weight * eot_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log.append({"step": step, "elapsed_s": time.perf_counter() - start, "text_loss": text_loss.item(),
                    "eot_loss": eot_loss.item(), "token_acc": acc.item()})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    words += _snapshot(model, step, [*items, *held_out])
    model.eval()
    return TinyRun(model, pd.DataFrame(log), pd.DataFrame(words))


def _snapshot(model, step: int, items, max_words: int = 10) -> list[dict]:
    # An untrained model writes a word at almost every step: the first few say enough.
    rows = []
    for i, text in enumerate(transcripts(model, items)):
        words = text.split()
        rows.append({"step": step, "item": i, "transcript": " ".join(words[:max_words]) +
                     (f" ... (+{len(words) - max_words} words)" if len(words) > max_words else "")})
    return rows


def first_words(run: TinyRun, items, held_out=()) -> pd.DataFrame:
    """One row a snapshot, one column an item (held-out items marked): the transcripts as training went on,
    the reference on top."""
    every = [*items, *held_out]
    names = [f"item {i}" + (" (not trained on)" if i >= len(items) else "") for i in range(len(every))]
    table = run.words.pivot(index="step", columns="item", values="transcript")
    reference = pd.DataFrame([[" ".join(w for w, _, _ in it.words) for it in every]], index=["reference"])
    table.columns = reference.columns = names
    return pd.concat([reference, table.rename(index=lambda s: f"after {s} steps")]).fillna("")
