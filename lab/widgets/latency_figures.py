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
from .figures import HEAD_COLORS

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


def compact(table, rows: int | None = None, drop=()) -> pd.DataFrame:
    """A table as the notebook shows it: rounded to 3 decimals (ms and s alike), constant or bookkeeping
    columns in `drop` left out, so that it fits the page instead of running off to the right."""
    t = pd.DataFrame(table).drop(columns=[c for c in drop if c in pd.DataFrame(table)])
    return (t if rows is None else t.head(rows)).round(3)


def batch_table(rows) -> pd.DataFrame:
    """`benchmarks.batch` rows, compact: the columns that change with B (threads, dtype and audio are in the
    note)."""
    return compact(rows, drop=("benchmark", "threads", "dtype", "audio"))


def batch_note(rows, sizes) -> str:
    """What the batch benchmark measured, in words: which sizes kept up with real time, which were slow and
    by how much, and which were left out after a slow one (a bigger batch only takes longer)."""
    if not rows:
        return "No batch size was measured."
    done = [r["batch_size"] for r in rows]
    fast = [r["batch_size"] for r in rows if r["realtime"]]
    slow = [f"B = {r['batch_size']} ({r['step_ms_p50']:.0f} ms)" for r in rows if not r["realtime"]]
    skipped = [b for b in sizes if b not in done]
    out = [f"Measured B = {', '.join(map(str, done))} on {rows[0]['threads']} thread(s), {rows[0]['dtype']}."]
    out.append(f"In real time (a step under {REALTIME_MS:.0f} ms): B up to {max(fast)}." if fast else
               f"No size kept up with real time: even B = {done[0]} took over {REALTIME_MS:.0f} ms a step, "
               "a busy or slow machine (the notebook's other cells, or other programs, share its cores).")
    if slow:
        out.append(f"Slower than real time: {', '.join(slow)}.")
    if skipped:
        out.append(f"Not measured after a slow size: B = {', '.join(map(str, skipped))}.")
    if "not speech" in rows[0].get("audio", ""):
        out.append(f"Audio: {rows[0]['audio']}.")
    return " ".join(out)


def budget_figure(budget, info: dict, flushed=None, title: str | None = None):
    """lab.latency_budget: one word's budget as a waterfall from its start in the audio, the word's end and
    its delivery marked; `flushed` (flushed_budget) as a second row from the word's end, the alternative for
    the last word of a turn when the end-of-turn decision comes right there."""
    fig, ax = _fig(figsize=(10, 3.4 if flushed is None else 4.0))
    colors = ["#9edae5", "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#7f7f7f"]
    t, shown = info["start_s"] * 1000, 0
    for k, row in enumerate(budget.itertuples()):
        if row.ms <= 0:
            continue
        ax.barh(1, row.ms, left=t, color=colors[k % len(colors)], edgecolor="white")
        # labels alternate between two heights: a short component's label would run into its neighbour's
        ax.text(t + row.ms / 2, 1.45 + 0.45 * (shown % 2), f"{row.component}\n{row.ms:.0f} ms", ha="center",
                va="bottom", fontsize=8)
        t, shown = t + row.ms, shown + 1
    ax.axvline(info["start_s"] * 1000, color="k", lw=1)
    ax.axvline(info["end_s"] * 1000, color="k", ls="--", lw=1)
    ax.axvline(t, color="#d62728", lw=1.5)
    ax.text(info["end_s"] * 1000, 2.6, "the word ends", fontsize=8, ha="center")
    ax.text(t, 0.35, f" delivered: {t - info['start_s'] * 1000:.0f} ms after its start,\n "
            f"{t - info['end_s'] * 1000:.0f} ms after its end", fontsize=8, color="#d62728")
    labels = [f"\"{info['text']}\""]
    if flushed is not None:
        ms = float(flushed.ms.sum())
        ax.barh(0, ms, left=info["end_s"] * 1000, color="#bcbd22")
        ax.text(info["end_s"] * 1000 + ms, 0, f" flush: {ms:.0f} ms", va="center", fontsize=8)
        labels = ["last word, flushed\nat its end", *labels]
    ax.set_yticks([0, 1][-len(labels):], labels)
    ax.set_ylim(-0.6 if flushed is not None else 0.2, 2.8)
    ax.set_xlim(info["start_s"] * 1000 - 20, t + 260)  # room for the delivery's note on the right
    ax.set_xlabel("stream time (ms): the word's start (solid), end (dashed), delivery (red)")
    ax.set_title(title or f"Where the milliseconds of one word go: \"{info['text']}\"")
    return _done(fig)


def pool_figure(frames, snapshots: tuple[int, ...] | None = None, title: str | None = None):
    """lab.pool_trace frames: top, each slot tick by tick (who holds it, the position it wrote, hatched when
    its user sent nothing, a reset where a user joins); below, each slot's ring of keys and values at a few
    ticks (the absolute step each ring slot holds; the one just written outlined)."""
    from matplotlib.patches import Rectangle

    slots, context = frames[0].ring.shape
    users = sorted({u for f in frames for u in f.users if u is not None})
    color = {u: HEAD_COLORS[k % len(HEAD_COLORS)] for k, u in enumerate(users)}
    snapshots = snapshots or (frames[len(frames) // 3].tick, frames[2 * len(frames) // 3].tick, frames[-1].tick)
    from ..extras import require

    plt = require("matplotlib.pyplot", "lab.widgets")
    fig = plt.figure(figsize=(12, 3.2 + 0.9 * slots), constrained_layout=True)
    grid = fig.add_gridspec(2, len(snapshots), height_ratios=[1.2, 1])
    ax = fig.add_subplot(grid[0, :])
    for f in frames:
        for s in range(slots):
            user = f.users[s]
            if user is None:
                continue
            stepped = f.active[s]
            ax.add_patch(Rectangle((f.tick, s), 1, 1, facecolor=color[user], alpha=0.85 if stepped else 0.25,
                                   hatch=None if stepped else "//", edgecolor="white"))
            ax.text(f.tick + 0.5, s + 0.5, str(f.next_pos[s] - 1) if stepped else "idle", ha="center",
                    va="center", fontsize=8, color="white" if stepped else "#333")
        for e in f.events:
            if " joins slot " in e:
                ax.plot([f.tick], [int(e.rsplit(" ", 1)[1]) + 0.5], marker=">", color="k", ms=7)
    for u in users:
        ax.plot([], [], "s", color=color[u], label=u)
    ax.plot([], [], ">", color="k", label="joins: the slot is reset")
    ax.set(xlim=(0, len(frames)), ylim=(slots, 0), xlabel="tick (one 80 ms frame; the number: the position "
           "the slot's step wrote; hatched: its user sent nothing, the slot did not step)",
           yticks=np.arange(slots) + 0.5, yticklabels=[f"slot {s}" for s in range(slots)])
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"A batch of {slots} slots: users join and leave, each slot keeps its own position")
    by_tick = {f.tick: f for f in frames}
    for k, tick in enumerate(snapshots):
        f, ax_r = by_tick[tick], fig.add_subplot(grid[1, k])
        for s in range(slots):
            written = (f.next_pos[s] - 1) % context if f.active[s] else None
            for r in range(context):
                held = int(f.ring[s, r])
                user = f.users[s]
                ax_r.add_patch(Rectangle((r, s), 1, 1, facecolor=color[user] if held >= 0 and user else "#f4f4f4",
                                         alpha=0.8 if held >= 0 else 1.0, edgecolor="k" if r == written else "white",
                                         lw=2 if r == written else 1))
                ax_r.text(r + 0.5, s + 0.5, str(held) if held >= 0 else "", ha="center", va="center", fontsize=8,
                          color="white")
        ax_r.set(xlim=(0, context), ylim=(slots, 0), xticks=np.arange(context) + 0.5, xticklabels=range(context),
                 yticks=np.arange(slots) + 0.5, yticklabels=[f"slot {s}" for s in range(slots)],
                 xlabel=f"ring slot (position mod {context}, the context)")
        ax_r.set_title(f"KV ring after tick {tick}", fontsize=10)
    plt.close(fig)  # shown once, from the returned value
    return fig
def serve_load_figure(rows, title: str | None = None):
    """lab.serve.load rows: step lag and word emission latency against concurrent real-time clients, one
    line pair per served dtype (rows without one: a single server), the 80 ms of one frame and a local
    stream's word latency for scale."""
    load = [r for r in rows if r["benchmark"] == "serve_load"]
    local = next((r for r in rows if r["benchmark"] == "serve_load_local"), None)
    dtypes = list(dict.fromkeys(r.get("dtype") for r in load))
    fig, (a, b) = _fig(1, 2, figsize=(10, 3.6))
    for dtype in dtypes:
        mine = [r for r in load if r.get("dtype") == dtype]
        n = [r["clients"] for r in mine]
        tag = f" ({dtype})" if len(dtypes) > 1 else ""
        for q, style in (("p50", "o-"), ("p99", "s--")):
            a.plot(n, [r[f"step_lag_ms_{q}"] for r in mine], style, label=f"step lag {q}{tag}")
            b.plot(n, [r[f"word_latency_ms_{q}"] for r in mine], style, label=f"served {q}{tag}")
    a.axhline(REALTIME_MS, color="grey", lw=0.8, ls=":", label="one frame (80 ms)")
    if local is not None:
        b.axhline(local["word_latency_ms_p50"], color="green", lw=1, ls=":", label="local stream p50")
    n = sorted({r["clients"] for r in load})
    for ax, what in ((a, "frame sent -> its Step back"), (b, "word's end sent -> the Word back")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(x) for x in n])
        ax.set_xlabel("concurrent real-time clients")
        ax.set_ylabel("ms")
        ax.set_title(what if title is None else f"{title}: {what}")
        ax.legend(fontsize=7)
    return _done(fig)
