"""Figures for the latency notebook, drawn from the tables of lab.latency and lab.benchmarks.

- `emission_figure`: per-word emission latency, in stream time (the model's delay) and on the wall clock.
- `flush_figure`: decision -> final word, per flush variant, against its floor and the real-time wait.
- `flush_delay_figure`: `Streamer.flush()` time against the delay D, with the floor (D + 1) x step.
- `batch_figure`: one step of B streams against B, and the 80 ms a step may take to keep up.
- `serve_load_figure`: step lag and word latency of a served model against concurrent clients.
Every figure is titled and its axes carry units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import FRAME_RATE

REALTIME_MS = 1000 / FRAME_RATE


def _fig(*args, **kwargs):
    from ..extras import require

    plt = require("matplotlib.pyplot", "lab.widgets")

    return plt.subplots(*args, **kwargs)


def _done(fig):
    from ..extras import require

    plt = require("matplotlib.pyplot", "lab.widgets")

    fig.tight_layout()
    plt.close(fig)  # shown once, from the returned value
    return fig


def emission_figure(words: pd.DataFrame, delay_s: float, title: str | None = None):
    """Histogram of `latency_stream_s` (model time) and `latency_s` (wall clock) from lab.latency."""
    fig, ax = _fig(figsize=(8, 3.6))
    values = [words[c].dropna().to_numpy() for c in ("latency_stream_s", "latency_s") if c in words]
    lo = min([v.min() for v in values if len(v)] + [0.0])
    hi = max([v.max() for v in values if len(v)] + [delay_s + 0.2])
    bins = np.linspace(lo, hi, 30)
    for col, label in (("latency_stream_s", "stream time (the model's delay)"),
                       ("latency_s", "wall clock (plus waiting and compute)")):
        if col in words:
            ax.hist(words[col].dropna(), bins=bins, alpha=0.55, label=label)
    ax.axvline(delay_s, color="k", linestyle="--", label=f"D = {delay_s:.2f} s")
    ax.set_xlabel("emission latency: word out minus reference end of the word (s)")
    ax.set_ylabel("words")
    ax.set_title(title or "Emission latency per word")
    ax.legend(fontsize=8)
    return _done(fig)


def flush_figure(summary: pd.DataFrame, title: str | None = None):
    """Median and p90 flush latency per (decision, variant) from lab.latency.summary, with the floor
    (D + 1) x median step and the wait of D frames in real time."""
    fig, ax = _fig(figsize=(8, 3.8))
    labels = [f"{r.decision}\n{r.variant}" for r in summary.itertuples()]
    x = np.arange(len(summary))
    ax.bar(x - 0.2, summary.latency_p50_s * 1000, width=0.4, label="p50")
    ax.bar(x + 0.2, summary.latency_p90_s * 1000, width=0.4, label="p90")
    if len(summary):
        ax.axhline(summary.floor_s.iloc[0] * 1000, color="g", linestyle="--", label="floor: (D + 1) x step")
        ax.axhline(summary.wait_s.iloc[0] * 1000, color="r", linestyle=":", label="D x 80 ms, waited in real time")
    ax.set_xticks(x, labels)
    ax.set_ylabel("decision -> final word (ms)")
    ax.set_title(title or "Flush latency: end-of-turn decision to the turn's last word")
    ax.legend(fontsize=8)
    return _done(fig)


def flush_delay_figure(rows, title: str | None = None):
    """`benchmarks.flush` rows: flush time (ms) against D, next to its floor, Unmute's variant and the wait."""
    t = pd.DataFrame(rows)
    fig, ax = _fig(figsize=(7, 4))
    ax.plot(t.delay_frames, t.flush_ms, "o-", label="Streamer.flush()")
    ax.plot(t.delay_frames, t.floor_ms, "--", label="floor: (D + 1) x median step")
    if "unmute_ms" in t:
        ax.plot(t.delay_frames, t.unmute_ms, "s:", label="Unmute: ceil(D) + 1 frames of zeros")
    ax.plot(t.delay_frames, t.wait_ms, color="r", label="waiting D x 80 ms in real time")
    ax.set_xlabel("delay D (frames of 80 ms)")
    ax.set_ylabel("time to drain the delay (ms)")
    ax.set_yscale("log")
    ax.set_title(title or "Flushing drains the delay much faster than real time")
    ax.legend(fontsize=8)
    return _done(fig)


def batch_figure(rows, title: str | None = None):
    """`benchmarks.batch` rows: time of one step of B streams, and per stream, against B (log-log)."""
    t = pd.DataFrame(rows)
    fig, ax = _fig(figsize=(7, 4))
    ax.plot(t.batch_size, t.step_ms_p50, "o-", label="one step of the whole batch (p50)")
    ax.plot(t.batch_size, t.per_stream_ms, "s--", label="per stream")
    if "model_step_ms_p50" in t:
        ax.plot(t.batch_size, t.model_step_ms_p50, ":", label="of which the transformer")
    ax.axhline(REALTIME_MS, color="r", label="80 ms: real time")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("streams in the batch (B)")
    ax.set_ylabel("time per step (ms)")
    ax.set_title(title or "Batching: many streams for the price of a few")
    ax.legend(fontsize=8)
    return _done(fig)


def serve_load_figure(rows, title: str | None = None):
    """lab.serve.load rows: step lag and word emission latency against concurrent real-time clients, the
    80 ms of one frame and a local stream's word latency for scale."""
    load = [r for r in rows if r["benchmark"] == "serve_load"]
    local = next((r for r in rows if r["benchmark"] == "serve_load_local"), None)
    n = [r["clients"] for r in load]
    fig, (a, b) = _fig(1, 2, figsize=(10, 3.6))
    for q, style in (("p50", "o-"), ("p99", "s--")):
        a.plot(n, [r[f"step_lag_ms_{q}"] for r in load], style, label=f"step lag {q}")
        b.plot(n, [r[f"word_latency_ms_{q}"] for r in load], style, label=f"served {q}")
    a.axhline(REALTIME_MS, color="grey", lw=0.8, ls=":", label="one frame (80 ms)")
    if local is not None:
        b.axhline(local["word_latency_ms_p50"], color="green", lw=1, ls=":", label="local stream p50")
    for ax, what in ((a, "frame sent -> its Step back"), (b, "word's end sent -> the Word back")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(x) for x in n])
        ax.set_xlabel("concurrent real-time clients")
        ax.set_ylabel("ms")
        ax.set_title(what if title is None else f"{title}: {what}")
        ax.legend(fontsize=8)
    return _done(fig)
