"""Training the toy text-to-speech model (`lab.tts`) on the CPU: clean grammar sentences of one espeak-ng
voice, exact word timings from espeak-ng's word events, teacher forcing.

    dsm-lab tts-train --out runs/dsm-toy-tts --minutes 25

Two losses: L1 on the normalised log-mel frames of the audio stream, and a binary "a word starts now" loss
on the text stream's EPAD decisions (at steps that carry a word's pieces the text is forced, so there is
nothing to learn there). The audio the model is fed back is its target plus noise, with whole frames
dropped now and then: at generation time it hears its own imperfect frames, and must not fall apart.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .synth.grammar import sample_sentence
from .tokenizer import Tokenizer
from .train import sentence_key, text_targets
from .tts import N_MELS, ToyTTS, TTSConfig, log_mel, save

SILENCE_LOG = math.log(1e-5)


def grammar_sentences(n: int, seed: int, exclude: set[str] = frozenset()) -> list:
    """`n` distinct grammar sentences (statements and questions), none of them in `exclude` (sentence keys)."""
    rng, out, seen = random.Random(seed), [], set(exclude)
    for _ in range(200 * n):
        s = sample_sentence(rng, kind="grammar")
        key = sentence_key(s.text)
        if key not in seen:
            seen.add(key)
            out.append(s)
            if len(out) == n:
                return out
    raise ValueError(f"the grammar gave only {len(out)} distinct sentences for n = {n}")


def speak_sentence(sentence, voice: str) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """One sentence, clean, by espeak-ng at its default rate: 24 kHz audio and (written word, start, end)."""
    from .synth.turn import synthesize_text

    audio, meta = synthesize_text(sentence.text + ("?" if sentence.question else "."), voice=voice,
                                  lead_s=0.2, end_s=0.4)
    audio = audio.astype(np.float32) / (32768.0 if audio.dtype == np.int16 else 1.0)
    return audio, [(w["written"], w["start"], w["end"]) for w in meta["words"]]


def build_corpus(sentences, voice: str, progress: bool = True) -> list[dict]:
    from tqdm.auto import tqdm

    items = []
    for s in tqdm(sentences, desc="speak", unit="sentence", disable=not progress):
        audio, words = speak_sentence(s, voice)
        items.append({"text": s.written_text, "key": sentence_key(s.text), "mel": log_mel(audio), "words": words})
    return items


def batch(items: list[dict], tok: Tokenizer, cfg: TTSConfig, rng: np.random.Generator, noise: float = 0.5,
          frame_drop: float = 0.1):
    """Teacher-forced inputs and targets for a list of items (log-mel not yet normalised)."""
    D = cfg.audio_delay
    n_steps = max(len(it["mel"]) for it in items) + D
    silence = (SILENCE_LOG - cfg.mel_mean) / cfg.mel_std
    audio = np.full((len(items), n_steps, cfg.frame_dim), silence, dtype=np.float32)
    mask = np.zeros((len(items), n_steps), dtype=np.float32)
    text = np.zeros((len(items), n_steps), dtype=np.int64)
    for b, it in enumerate(items):
        n = len(it["mel"])
        audio[b, D:D + n] = (it["mel"] - cfg.mel_mean) / cfg.mel_std
        mask[b, :D + n] = 1.0
        text[b], _ = text_targets(it["words"], tok, n_steps, delay=0)
    fed = audio + rng.standard_normal(audio.shape).astype(np.float32) * noise
    fed[rng.random(fed.shape[:2]) < frame_drop] = silence
    audio_in = np.concatenate([np.zeros_like(fed[:, :1]), fed[:, :-1]], 1)
    text_in = np.concatenate([np.full((len(items), 1), cfg.text_vocab), text[:, :-1]], 1)
    return tuple(torch.from_numpy(x) for x in (text_in, audio_in, audio, text, mask))


def losses(model: ToyTTS, text_in, audio_in, audio, text, mask):
    cfg = model.cfg
    pred, start_logit = model(text_in, audio_in)
    l1 = ((pred - audio).abs().mean(-1) * mask).sum() / mask.sum()
    decides = ((text == cfg.pad_id) | (text == cfg.epad_id)).float() * mask
    start = F.binary_cross_entropy_with_logits(start_logit, (text == cfg.epad_id).float(), reduction="none")
    return l1, (start * decides).sum() / decides.sum()


def train_tts(out: str | Path, tokenizer_path: str | Path, minutes: float = 25.0, n_sentences: int = 2500,
              seed: int = 0, batch_size: int = 16, lr: float = 1e-3, threads: int = 1, log=print,
              cfg: TTSConfig | None = None) -> Path:
    """Speak the corpus, train for `minutes`, write the model folder `out/model`; returns it."""
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(tokenizer_path)
    cfg = cfg or TTSConfig()
    t0 = time.perf_counter()
    items = build_corpus(grammar_sentences(n_sentences, seed), cfg.voice)
    corpus_s = time.perf_counter() - t0
    every = np.concatenate([it["mel"].reshape(-1, N_MELS) for it in items])
    cfg.mel_mean, cfg.mel_std = float(every.mean()), float(every.std())
    (out / "sentences.json").write_text(json.dumps(sorted(it["key"] for it in items)))
    model = ToyTTS(cfg)
    model.tokenizer = tok
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    rng = np.random.default_rng(seed)
    items.sort(key=lambda it: len(it["mel"]))
    log(f"{len(items)} sentences spoken in {corpus_s:.0f} s; {model.n_params / 1e6:.2f} M parameters; "
        f"training {minutes} min")
    start, step, budget = time.perf_counter(), 0, minutes * 60
    model.train()
    with (out / "log.jsonl").open("w") as f:
        while (elapsed := time.perf_counter() - start) < budget:
            progress = elapsed / budget
            g_lr = lr * min(1.0, (step + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
            for g in opt.param_groups:
                g["lr"] = g_lr
            first = rng.integers(max(1, len(items) - 4 * batch_size))  # similar lengths: little padding
            chosen = [items[first + i] for i in rng.integers(min(len(items), 4 * batch_size), size=batch_size)]
            l1, start_loss = losses(model, *batch(chosen, tok, cfg, rng))
            opt.zero_grad(set_to_none=True)
            (l1 + 0.5 * start_loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 50 == 0:
                f.write(json.dumps({"step": step, "elapsed_s": round(elapsed, 1), "l1": l1.item(),
                                    "word_start": start_loss.item(), "lr": g_lr}) + "\n")
                f.flush()
            if step % 500 == 0:
                log(f"step {step} ({elapsed / 60:.1f} min): L1 {l1.item():.3f}, word start {start_loss.item():.3f}")
    model.eval()
    model.training_record = {"training": {"steps": step, "minutes": round((time.perf_counter() - start) / 60, 1),
                                          "corpus_seconds": round(corpus_s), "sentences": len(items),
                                          "seed": seed, "batch_size": batch_size, "lr": lr}}
    folder = save(model, out / "model", tokenizer_path)
    for name in ("sentences.json", "log.jsonl"):  # what it trained on, and how: shipped with the weights
        (folder / name).write_text((out / name).read_text())
    log(f"done: {step} steps -> {folder} ({json.dumps(asdict(cfg))[:80]}...)")
    return folder
