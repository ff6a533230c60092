"""Static figures for the notebooks (matplotlib): what the live widgets show, frozen, plus the teaching views.

- `delay_timeline`: the audio, the reference words, and each emitted word twice, at its timestamp and at
  the moment it came out, joined by an arrow: the delay, seen.
- `two_streams`: the audio frames and the text stream on the same 12.5 Hz grid, the text D frames behind.
- `attention_over_audio`: one head's attention row for one step, drawn over the audio timeline, D marked.
- `session_figure`: a live session's end-of-turn trace: every head, the threshold, decisions, flushes, words.
- `sweep_figure`: WER against emission latency for models trained with different delays.
Every figure has a title and axes in seconds; each function returns the Figure.
"""

from __future__ import annotations

import numpy as np

from ..config import FRAME_RATE

HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _plt():
    from ..extras import require

    plt = require("matplotlib.pyplot", "lab.widgets")

    return plt


def _done(fig):
    """Close the figure in pyplot before returning it: a notebook then shows it once, from the returned value,
    not a second time from the inline backend's end-of-cell sweep."""
    fig.tight_layout()
    _plt().close(fig)
    return fig


def _waveform(ax, audio, sample_rate, color="#888"):
    audio = np.asarray(audio, dtype=np.float64)
    t = np.arange(len(audio)) / sample_rate
    step = max(1, len(audio) // 4000)  # a few thousand points draw the shape as well as all of them
    ax.plot(t[::step], audio[::step], color=color, linewidth=0.5)
    ax.set_xlim(0, len(audio) / sample_rate)


def _word_boxes(ax, words, y, height, color, label_key="text", start="start", end="end"):
    for w in words:
        s, e = (w[start], w[end]) if isinstance(w, dict) else (getattr(w, start), getattr(w, end))
        e = s + 1 / FRAME_RATE if e is None else e  # no EPAD after it: its end is unknown, one frame drawn
        text = w[label_key] if isinstance(w, dict) else getattr(w, label_key)
        ax.add_patch(_rect((s, y), max(e - s, 0.02), height, color))
        ax.text((s + e) / 2, y + height / 2, text, ha="center", va="center", fontsize=9,
                clip_on=True).set_in_layout(False)  # labels outside a zoomed window neither show nor squeeze


def _rect(xy, w, h, color):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=color, edgecolor="none", alpha=0.35)


def delay_timeline(audio, sample_rate, reference, words, delay_s: float, title: str | None = None,
                   spectrogram: bool = False, window_s: tuple[float, float] | None = None):
    """Audio (waveform or spectrogram), reference words, emitted words at their timestamp and at their
    emission time. `reference`: [{"text", "start", "end"}] (synth format); `words`: [Word];
    `window_s`: (start, end) to zoom into, in seconds."""
    plt = _plt()
    fig, (ax_a, ax_w) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, height_ratios=[1.2, 1.6])
    if spectrogram:
        dither = 1e-6 * np.random.default_rng(0).standard_normal(len(audio))  # digital silence has no log
        ax_a.specgram(np.asarray(audio, dtype=np.float64) + dither, NFFT=512, Fs=sample_rate, noverlap=384,
                      cmap="magma")
        ax_a.set_ylabel("frequency (Hz)")
    else:
        _waveform(ax_a, audio, sample_rate)
        ax_a.set_ylabel("amplitude")
    ax_a.set_title(title or f"Delay timeline: each word is written {delay_s:.2f} s (D) after it is spoken")
    _word_boxes(ax_w, reference, 2.0, 0.8, "#2ca02c")
    _word_boxes(ax_w, words, 1.0, 0.8, "#1f77b4", start="start_s", end="end_s")
    for w in words:  # the emission: a tick at the moment the word came out, an arrow from its start (DSM's anchor)
        ax_w.annotate("", xy=(w.emitted_s, 0.45), xytext=(w.start_s, 1.0),
                      arrowprops={"arrowstyle": "->", "color": "#d62728", "lw": 0.8})
        ax_w.plot([w.emitted_s], [0.4], marker="v", color="#d62728")
        ax_w.text(w.emitted_s, 0.05, w.text, ha="center", fontsize=8, rotation=30, color="#d62728",
                  clip_on=True).set_in_layout(False)
    ax_w.set_yticks([0.3, 1.4, 2.4], ["emitted at", "timestamp", "reference"])
    ax_w.set_ylim(-0.2, 3.0)
    ax_w.set_xlabel("time (s)")
    end = max([len(audio) / sample_rate] + [w.emitted_s + 0.2 for w in words])
    ax_w.set_xlim(*(window_s or (0, end)))
    return _done(fig)


def two_streams(audio, sample_rate, reference, steps, delay_frames: int, max_steps: int = 60, title=None):
    """The two streams on one grid: audio frames (80 ms each) and the text stream, where each reference
    word is placed at its start frame + D, and what the model wrote at each step (`steps`: Transcript.steps)."""
    plt = _plt()
    n = min(max_steps, len(steps)) if len(steps) else int(len(audio) / sample_rate * FRAME_RATE)
    fig, (ax_a, ax_t) = plt.subplots(2, 1, figsize=(11, 4.2), sharex=True, height_ratios=[1, 1.3])
    a = np.asarray(audio, dtype=np.float64)[: int(n / FRAME_RATE * sample_rate)]
    ax_a.plot(np.arange(len(a)) / sample_rate * FRAME_RATE, a, color="#888", linewidth=0.5)
    for k in range(n + 1):
        ax_a.axvline(k, color="#ddd", linewidth=0.5)
    ax_a.set_ylabel("audio")
    ax_a.set_title(title or f"Two streams on one 12.5 Hz grid: the text is D = {delay_frames} frames behind")
    for w in reference:
        frame = int(w["start"] * FRAME_RATE) + delay_frames
        if frame < n:
            ax_t.text(frame + 0.5, 1.5, w["text"], ha="center", va="center", fontsize=9, color="#2ca02c",
                      rotation=90)
            ax_t.annotate("", xy=(frame, 1.05), xytext=(w["start"] * FRAME_RATE, 1.95),
                          arrowprops={"arrowstyle": "->", "color": "#2ca02c", "lw": 0.6, "alpha": 0.5})
    for row in steps.head(n).itertuples():
        piece = row.piece
        label = "·" if piece == "" else ("⏎" if piece == "<epad>" else piece.replace("\u2581", "_"))
        ax_t.text(row.step + 0.5, 0.5, label, ha="center", va="center", fontsize=8, rotation=90,
                  color="#1f77b4" if piece not in ("", "<epad>") else "#999")
    ax_t.set_yticks([0.5, 1.5], ["model wrote", f"target (start + {delay_frames})"])
    ax_t.set_ylim(0, 2)
    ax_t.set_xlim(0, n)
    ax_t.set_xlabel("frame / step (one = 80 ms);  ·  PAD,  ⏎  EPAD (a word starts next)")
    return _done(fig)


def attention_over_audio(matrix, audio, sample_rate, step: int, delay_frames: int, alignment: str = "training",
                         words=None, title=None):
    """One head: its attention row at `step` as bars over the audio timeline (each key at the audio frame
    it saw), the present and the present minus D marked; beside it the whole (steps x keys) pattern."""
    plt = _plt()
    matrix = np.asarray(matrix)
    step = int(np.clip(step, 0, len(matrix) - 1))
    shift = 1 if alignment == "training" else 0  # "training": step j saw frame j-1
    fig, (ax, ax_m) = plt.subplots(1, 2, figsize=(12, 4.2), width_ratios=[2.6, 1])
    _waveform(ax, np.asarray(audio) / (np.abs(audio).max() + 1e-9) * 0.5, sample_rate, color="#bbb")
    keys = np.arange(matrix.shape[1])
    starts = (keys - shift) / FRAME_RATE
    ax2 = ax.twinx()
    ax2.bar(starts, matrix[step], width=1 / FRAME_RATE, align="edge", color="#1f77b4", alpha=0.7)
    ax2.set_ylabel("attention weight")
    now = (step + 1) / FRAME_RATE
    ax.axvline(now, color="k", linestyle="-", linewidth=1, label=f"now: step {step} runs at {now:.2f} s")
    ax.axvspan(now - delay_frames / FRAME_RATE, now, color="#ff7f0e", alpha=0.12,
               label=f"the last D = {delay_frames} frames: not yet written")
    for w in words or []:
        s = w["start"] if isinstance(w, dict) else w.start_s
        ax.text(s, -0.56, w["text"] if isinstance(w, dict) else w.text, fontsize=9, rotation=30, color="#2ca02c")
    ax.set_ylim(-0.6, 0.6)
    ax.set_xlim(0, max(len(audio) / sample_rate, now + 0.1))
    ax.set_xlabel("audio time (s)")
    ax.set_yticks([])
    # Below the plot, not on it: inside, the legend hid the first frames' attention bars.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    ax.set_title(title or f"Attention of step {step} over the audio it has heard")
    ax_m.imshow(matrix, aspect="auto", cmap="Blues", origin="upper", interpolation="nearest")
    ax_m.axhline(step, color="#d62728", linewidth=0.8)
    ax_m.set_xlabel("key step")
    ax_m.set_ylabel("query step")
    ax_m.set_title("all steps (rows sum to 1)")
    return _done(fig)


def session_figure(state, title: str | None = None):
    """A live session, frozen: every end-of-turn head, the policy threshold, its decisions, the flushes
    (with their measured latency) and each word at the time it came out."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.8))
    steps = state.steps_frame()
    for k, h in enumerate(state.horizons):
        col = steps.columns[1 + k]
        ax.plot(steps["time_s"], steps[col], color=HEAD_COLORS[k % 6], label=f"p_eot {h:g} s",
                linewidth=2 if k == state.policy_index else 1)
    ax.axhline(state.threshold, color=HEAD_COLORS[state.policy_index % 6], linestyle="--", linewidth=1,
               label=f"threshold {state.threshold:g}")
    for i, d in enumerate(state.decisions):
        ax.axvline(d.time_s, color="k", linewidth=1, label="end-of-turn decision" if i == 0 else None)
    for f in state.flushes:
        ax.annotate(f"flush {f.wall_ms:.0f} ms", (f.decision_s, 1.02), fontsize=7, ha="center")
    for w in state.words_frame().itertuples():
        ax.text(w.emitted_s, -0.08, w.word, rotation=40, fontsize=7, ha="right", va="top",
                color="#d62728" if w.by_flush else "#333")
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlim(0, max(state.now_s, 1.0))
    ax.set_xlabel("stream time (s); words at their emission time (red: brought out by a flush)")
    ax.set_ylabel("probability")
    ax.set_title(title or "Live session: end-of-turn probabilities, decisions and flushes")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    return _done(fig)


def sweep_figure(table, title: str | None = None):
    """WER against median emission latency, one point per model (`table`: columns delay_frames, wer,
    latency_p50_s, latency_p90_s); None (no sweep) draws nothing and returns None."""
    if table is None:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(table["latency_p50_s"], table["wer"] * 100,
                xerr=[np.zeros(len(table)), table["latency_p90_s"] - table["latency_p50_s"]], fmt="o-", capsize=3)
    for row in table.itertuples():
        ax.annotate(f"D = {row.delay_frames}", (row.latency_p50_s, row.wer * 100), textcoords="offset points",
                    xytext=(5, 5), fontsize=9)
    # Room around the points for their labels: the leftmost and topmost ("D = 2") were clipped at the edge.
    ax.margins(x=0.15, y=0.2)
    ax.set_xlabel("emission latency p50 (s), bar to p90")
    ax.set_ylabel("WER (%)")
    ax.set_title(title or "The delay trade-off: waiting longer writes better")
    return _done(fig)
