"""Figures of notebook 06 (the other direction).

- `two_directions_figure`: one sentence's streams laid out twice on the 12.5 Hz grid: for speech-to-text
  (the text D steps behind the audio) and for text-to-speech (the audio `audio_delay` steps behind the text).
- `spectra_figure`: espeak-ng's log-mel spectra and the toy model's, with where each put its words.
- `training_curve`: the toy model's losses over its training.
Every figure is titled and its axes carry units.
"""

from __future__ import annotations

import numpy as np

from ..config import FRAME_RATE
from .figures import _done, _plt

STREAM_COLORS = {"audio": "#2ca02c", "EPAD": "#ff7f0e", "piece": "#1f77b4", "PAD": "#eeeeee"}


def _stream_row(ax, y, kinds, labels, title):
    from matplotlib.patches import Rectangle

    for t, (kind, label) in enumerate(zip(kinds, labels)):
        ax.add_patch(Rectangle((t, y), 0.92, 0.8, color=STREAM_COLORS[kind], lw=0))
        if label:
            ax.text(t + 0.46, y + 0.4, label, ha="center", va="center", fontsize=7, rotation=90)
    ax.text(-0.5, y + 0.4, title, ha="right", va="center", fontsize=9)


def two_directions_figure(words, tokenizer, stt_delay: int, tts_delay: int, n_steps: int | None = None):
    """`words`: [(written word, start_s, end_s)]. Top: speech-to-text (text delayed); bottom: text-to-speech
    (audio delayed). Green cells: frames with speech; orange: EPAD; blue: a word's pieces."""
    from ..train import text_targets

    plt = _plt()
    last = int(max(e for _, _, e in words) * FRAME_RATE) + 1
    n = n_steps or last + max(stt_delay, tts_delay) + 3
    speech = np.zeros(n, bool)
    for _, s, e in words:
        speech[int(s * FRAME_RATE):int(np.ceil(e * FRAME_RATE))] = True

    def text_row(delay):
        tokens, _ = text_targets(words, tokenizer, n, delay)
        kinds = ["EPAD" if t == tokenizer.epad_id else "PAD" if t == tokenizer.pad_id else "piece" for t in tokens]
        labels = [tokenizer.sp.IdToPiece(int(t)) if k == "piece" else "" for t, k in zip(tokens, kinds)]
        return kinds, labels

    def audio_row(delay):
        shifted = np.concatenate([np.zeros(delay, bool), speech])[:n]
        return ["audio" if s else "PAD" for s in shifted], [""] * n

    fig, axes = plt.subplots(2, 1, figsize=(12, 4.2), sharex=True)
    for ax, (title, rows) in zip(axes, [
            (f"speech to text: the text follows, D = {stt_delay} steps ({stt_delay / FRAME_RATE:.2f} s)",
             [("audio (input)", audio_row(0)), ("text (output)", text_row(stt_delay))]),
            (f"text to speech: the audio follows, {tts_delay} steps ({tts_delay / FRAME_RATE:.2f} s)",
             [("text (input)", text_row(0)), ("audio (output)", audio_row(tts_delay))])]):
        for y, (name, (kinds, labels)) in zip((1.0, 0.0), rows):
            _stream_row(ax, y, kinds, labels, name)
        ax.set_ylim(-0.2, 2.0)
        ax.set_xlim(-0.2, n)
        ax.set_yticks([])
        ax.set_title(title, fontsize=10)
    axes[-1].set_xlabel("step (80 ms each)")
    fig.suptitle("The same two streams, delayed one way or the other", y=1.0)
    return _done(fig)


def spectra_figure(heard, cfg, title: str | None = None):
    """`heard`: a lab.tts_loop.Heard. espeak-ng's spectra on top, the toy model's below, each with the times
    at which its words start (espeak-ng's word events; the model's EPAD decisions)."""
    from ..tts import N_MELS, SUB

    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.2), sharex=True)
    words = heard.sentence.split()
    for ax, key, name in zip(axes, ("espeak", "toy_tts"), ("espeak-ng", "toy text-to-speech model")):
        spec = heard.frames[key].reshape(-1, N_MELS).T
        seconds = spec.shape[1] / (SUB * FRAME_RATE)
        ax.imshow(spec, origin="lower", aspect="auto", extent=(0, seconds, 0, N_MELS), cmap="magma",
                  vmin=-2.5, vmax=2.5)
        for w, s in zip(words, heard.word_starts_s[key]):
            ax.axvline(s, color="white", lw=0.8, ls="--")
            ax.text(s + 0.01, N_MELS - 6, w, color="white", fontsize=9)
        ax.set_ylabel("mel band")
        ax.set_title(f"{name}: heard as \u201c{heard.text[key]}\u201d", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or f"\u201c{heard.sentence}\u201d, a sentence the toy model never trained on", y=1.0)
    return _done(fig)


def training_curve(log: list[dict], title: str | None = None):
    """The toy model's L1 spectral loss and word-start loss against training time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    minutes = [r["elapsed_s"] / 60 for r in log]
    ax.plot(minutes, [r["l1"] for r in log], label="spectra: L1 (normalised log-mel)", color="#1f77b4")
    ax.plot(minutes, [r["word_start"] for r in log], label="word start: binary cross-entropy", color="#ff7f0e")
    ax.set_xlabel("training time (min, one CPU thread)")
    ax.set_ylabel("loss")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(title or "The toy text-to-speech model's training")
    return _done(fig)
