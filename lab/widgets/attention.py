"""Attention viewer: layer, head and step sliders over a recorded run.

    viewer = AttentionViewer.from_run(model, widgets.sample("weather").wav)
    viewer                       # sliders; the step's attention row over the audio timeline, D marked
    viewer.figure()              # the same view as a static figure (for a notebook run headless)

The run is recorded once (`lab.record(model, "blocks.*.attn.pattern")`); the page gets the selected head's
(steps x keys) pattern as float32 bytes when the layer or head changes, and moves the step itself, so the
step slider answers at once. Drawn on a canvas by attention.js: no CDN, works offline.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import numpy as np
import pandas as pd
import traitlets

from ..config import FRAME_RATE
from ..hooks import record

ENVELOPE_POINTS = 800  # waveform min/max pairs sent to the page


def envelope(audio: np.ndarray, n: int = ENVELOPE_POINTS) -> list[list[float]]:
    """[min, max] of each of `n` equal slices of the audio: the waveform's outline, small enough to send."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) == 0:
        return []
    edges = np.linspace(0, len(audio), min(n, len(audio)) + 1).astype(int)
    return [[float(audio[a:b].min()), float(audio[a:b].max())] for a, b in zip(edges[:-1], edges[1:])]


class AttentionViewer(anywidget.AnyWidget):
    _esm = Path(__file__).parent / "attention.js"
    _css = Path(__file__).parent / "widgets.css"
    n_layers = traitlets.Int(1).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    n_steps = traitlets.Int(0).tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)
    head = traitlets.Int(0).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    matrix = traitlets.Bytes(b"").tag(sync=True)  # float32 (n_steps x n_steps) of the selected head
    wave = traitlets.List([]).tag(sync=True)  # envelope of the audio
    duration_s = traitlets.Float(0.0).tag(sync=True)
    delay_frames = traitlets.Int(0).tag(sync=True)
    frame_shift = traitlets.Int(1).tag(sync=True)  # 1: step j saw audio frame j-1 ("training"), 0: frame j
    words = traitlets.List([]).tag(sync=True)  # [{text, start, end}] drawn under the timeline
    frame_rate = traitlets.Float(FRAME_RATE).tag(sync=True)

    def __init__(self, patterns: np.ndarray, audio: np.ndarray, sample_rate: int, delay_frames: int,
                 alignment: str = "training", words=None, step: int | None = None, **kwargs):
        """`patterns`: (layers, heads, steps, keys) attention weights, rows summing to 1."""
        patterns = np.asarray(patterns, dtype=np.float32)
        if patterns.ndim != 4 or patterns.shape[2] != patterns.shape[3]:
            raise ValueError(f"patterns must be (layers, heads, steps, steps), got shape {patterns.shape}")
        self.patterns, self.audio, self.sample_rate = patterns, np.asarray(audio), int(sample_rate)
        self.alignment = alignment
        L, H, T, _ = patterns.shape
        super().__init__(n_layers=L, n_heads=H, n_steps=T, delay_frames=delay_frames,
                         frame_shift=1 if alignment == "training" else 0, wave=envelope(self.audio),
                         duration_s=len(self.audio) / self.sample_rate, words=_word_dicts(words or []),
                         step=min(T - 1, step if step is not None else T // 2), **kwargs)
        self.observe(self._send_matrix, names=["layer", "head"])
        self._send_matrix()

    def _send_matrix(self, change=None):
        self.layer = int(np.clip(self.layer, 0, self.n_layers - 1))
        self.head = int(np.clip(self.head, 0, self.n_heads - 1))
        self.matrix = np.ascontiguousarray(self.patterns[self.layer, self.head]).tobytes()

    def row(self, layer: int | None = None, head: int | None = None, step: int | None = None) -> np.ndarray:
        """The attention row the view draws: keys of one step of one head."""
        return self.patterns[self.layer if layer is None else layer, self.head if head is None else head,
                             self.step if step is None else step]

    def lag_table(self) -> pd.DataFrame:
        """Per layer and head: how far back it looks (attention-weighted lag in frames, averaged over steps)
        and the share of its attention on the last D frames, which the text stream has not caught up with."""
        L, H, T, _ = self.patterns.shape
        lags = np.arange(T)[:, None] - np.arange(T)[None, :]  # (query, key): frames back
        recent = (lags >= 0) & (lags < max(self.delay_frames, 1))
        rows = []
        for layer in range(L):
            for head in range(H):
                p = self.patterns[layer, head]
                rows.append({"layer": layer, "head": head, "mean_lag_frames": float((p * lags).sum(1).mean()),
                             "share_in_last_D": float((p * recent).sum(1).mean())})
        return pd.DataFrame(rows).round(3)

    def head_closest_to_delay(self) -> tuple[int, int]:
        """(layer, head) whose mean lag is closest to D frames: a head that looks across the delay."""
        table = self.lag_table()
        best = (table.mean_lag_frames - self.delay_frames).abs().idxmin()
        return int(table["layer"][best]), int(table["head"][best])

    def figure(self, layer: int | None = None, head: int | None = None, step: int | None = None):
        from .figures import attention_over_audio

        layer = self.layer if layer is None else layer
        head = self.head if head is None else head
        step = self.step if step is None else step
        return attention_over_audio(self.patterns[layer, head], self.audio, self.sample_rate, step,
                                    self.delay_frames, self.alignment, self.words,
                                    title=f"Layer {layer}, head {head}: attention of step {step} over the audio")

    @classmethod
    def from_run(cls, model, clip, words=None, alignment: str | None = None, **kwargs) -> AttentionViewer:
        """Transcribe `clip` (a path or (array, rate)) while recording every layer's attention pattern.

        `words` defaults to the clip's reference words when it has a synth JSON beside it, else the
        model's own words.
        """
        from ..audio import load_audio

        audio, rate = clip if isinstance(clip, tuple) else load_audio(clip)
        with record(model, "blocks.*.attn.pattern") as rec:
            transcript = model.transcribe((audio, rate), alignment=alignment)
        cfg = model.cfg
        patterns = np.stack([np.stack([rec.attention(layer, head) for head in range(cfg.num_heads)])
                             for layer in range(cfg.num_layers)])  # (L, H, T, T)
        if words is None:
            words = reference_words(clip) or transcript.words
        if kwargs.get("step") is None and len(words) > 2:  # where the third word is written: mid-sentence
            start = words[2]["start"] if isinstance(words[2], dict) else words[2].start_s
            kwargs["step"] = round(start * FRAME_RATE) + cfg.delay_frames
        viewer = cls(patterns, audio, rate, cfg.delay_frames, alignment or model.alignment, words, **kwargs)
        viewer.transcript = transcript
        return viewer


def reference_words(clip) -> list[dict]:
    """The reference words of a clip that has a synth JSON next to it ([] otherwise)."""
    import json

    if isinstance(clip, tuple):
        return []
    meta = Path(clip).with_suffix(".json")
    return json.loads(meta.read_text())["words"] if meta.is_file() else []


def _word_dicts(words) -> list[dict]:
    out = []
    for w in words:
        if isinstance(w, dict):
            out.append({"text": w["text"], "start": float(w["start"]), "end": float(w["end"])})
        else:  # a lab Word
            end = w.start_s + 0.08 if w.end_s is None else w.end_s  # None: no EPAD came after it
            out.append({"text": w.text, "start": float(w.start_s), "end": float(end)})
    return out
