"""Figures of notebook 00 (how DSM learns), drawn from the tables of lab.lessons.

- `target_stream_figure`: an item's audio and its delayed text stream, cell by cell: EPAD before each word,
  its pieces, PAD elsewhere; an arrow from where a word was spoken to its EPAD; a word pushed back by the one
  before it is marked.
- `eot_labels_figure`: the end-of-turn labels of every head over the item (lab.train.eot_targets).
- `loss_curve`: the tiny model's text and end-of-turn losses and its token accuracy, step by step.
Every figure is titled and its axes carry units.
"""

from __future__ import annotations

import numpy as np

from ..config import FRAME_RATE
from .figures import _done, _plt

KIND_COLORS = {"EPAD": "#ff7f0e", "piece": "#1f77b4", "PAD": "#eeeeee"}


def target_stream_figure(audio, sample_rate, words, table, delay: int, max_steps: int | None = None,
                         title: str | None = None):
    """`words`: [(text, start_s, end_s)]; `table`: lab.lessons.target_table of those words. Audio (if any)
    on top with the word spans, the text stream below, one cell a step."""
    from matplotlib.patches import Rectangle

    plt = _plt()
    n = len(table) if max_steps is None else min(max_steps, len(table))
    fig, (ax_a, ax_t) = plt.subplots(2, 1, figsize=(12, 4.4), sharex=True, height_ratios=[1, 1.4])
    if audio is not None and len(audio):
        a = np.asarray(audio, dtype=np.float64)[: int(n / FRAME_RATE * sample_rate)]
        ax_a.plot(np.arange(len(a)) / sample_rate * FRAME_RATE, a / (np.abs(a).max() + 1e-9), color="#999", lw=0.5)
    for text, start, end in words:
        ax_a.axvspan(start * FRAME_RATE, end * FRAME_RATE, color="#2ca02c", alpha=0.15, lw=0)
        ax_a.text((start + end) / 2 * FRAME_RATE, 1.15, text, ha="center", fontsize=9, color="#2ca02c")
    ax_a.set_ylim(-1.1, 1.5)
    ax_a.set_yticks([])
    ax_a.set_ylabel("audio" if audio is not None and len(audio) else "words spoken")
    ax_a.set_title(title or f"The text stream the model is trained to write: D = {delay} frames behind the audio")
    for row in table.head(n).itertuples():
        ax_t.add_patch(Rectangle((row.step, 0), 1, 1, facecolor=KIND_COLORS[row.kind], edgecolor="white",
                                 alpha=0.9 if row.kind != "PAD" else 1.0))
        label = {"EPAD": "EPAD", "PAD": ""}.get(row.kind, row.piece.replace("\u2581", "_"))
        ax_t.text(row.step + 0.5, 0.5, label, ha="center", va="center", rotation=90, fontsize=8,
                  color="white" if row.kind != "PAD" else "#999")
    firsts = table[(table.kind == "EPAD") & (table.word != "")].drop_duplicates("word")
    for row in firsts.itertuples():
        if row.step >= n:
            continue
        start = next(s for w, s, _ in words if w == row.word)
        ax_t.annotate("", xy=(row.step + 0.5, 1.0), xytext=(start * FRAME_RATE, 2.0),
                      arrowprops={"arrowstyle": "->", "color": "#2ca02c", "lw": 0.8},
                      annotation_clip=False)
        if row.pushed_by > 0:  # its EPAD step was taken by the word before: it waits, and its date with it
            ax_t.text(row.step + 0.5, 1.15, f"+{int(row.pushed_by)}", ha="center", fontsize=9, color="#d62728")
    ax_t.set_ylim(0, 2.0)
    ax_t.set_yticks([0.5], ["text stream"])
    ax_t.set_xlim(0, n)
    ax_t.set_xlabel("step = frame (80 ms each);  orange: EPAD (a word starts next),  blue: the word's pieces,  "
                    "grey: PAD;  red +k: pushed k steps by the word before")
    return _done(fig)


def eot_labels_figure(words, labels, horizons, title: str | None = None):
    """`labels`: lab.train.eot_targets (steps x heads), 1 = someone speaks within the horizon."""
    plt = _plt()
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(12, 2.8))
    ax.imshow(labels.T, aspect="auto", cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest", origin="lower",
              extent=(0, len(labels) / FRAME_RATE, -0.5, len(horizons) - 0.5))
    for text, start, end in words:
        ax.axvspan(start, end, ymin=0.96, ymax=1.0, color="#2ca02c")
        ax.text((start + end) / 2, len(horizons) - 0.4, text, ha="center", va="bottom", fontsize=8, color="#2ca02c")
    ax.set_yticks(range(len(horizons)), [f"{h:g} s head" for h in horizons])
    ax.set_xlabel("time the step has heard up to (s);  dark: a word is heard within the horizon (label 1),  "
                  "white: nobody speaks in it (label 0, end of turn)")
    ax.set_title(title or "End-of-turn labels: will anyone speak in the next h seconds?", pad=16)
    return _done(fig)


def loss_curve(log, snapshots=(), title: str | None = None):
    """`log`: lab.lessons.TinyRun.log. Losses (log scale) and token accuracy against the step; the steps
    at which the transcripts were taken are marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(log.step, log.text_loss, label="text loss (PAD weighted 0.3)")
    ax.plot(log.step, log.eot_loss, label="end-of-turn loss", alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("training step (one batch)")
    ax.set_ylabel("cross-entropy (nats)")
    acc = ax.twinx()
    acc.plot(log.step, 100 * log.token_acc, color="#2ca02c", lw=1, alpha=0.7, label="word pieces right (%)")
    acc.set_ylabel("text tokens predicted right (%)")
    acc.set_ylim(0, 105)
    last = int(log.step.iloc[-1]) if len(log) else 0
    for s in (s for s in snapshots if s <= last):  # a snapshot the time budget never reached is not drawn
        ax.axvline(s, color="#bbb", lw=0.8, ls=":")
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    secs = float(log.elapsed_s.iloc[-1]) if len(log) else 0.0
    ax.set_title(title or f"A tiny model learning: {len(log)} steps in {secs:.0f} s (dotted: transcripts taken)")
    return _done(fig)
