"""Matplotlib figures for the lab's notebooks and benchmarks. Every figure is titled, every axis labelled
with its unit. Each function draws on `ax` if given (else a new figure) and returns the axes.

End of turn (the turn-detection lab):
    plot_eot_trace(result, decisions)   each head's probability over time, words, pauses, decisions
    plot_eot_tradeoff(sweeps)           early-cut rate against median detection latency, one curve a policy
"""

from __future__ import annotations

from .events import eot_column

PAUSE_COLORS = {"mid_turn": "tab:red", "end_of_turn": "tab:green"}  # a pause that must not / must end a turn
PAUSE_LABELS = {"mid_turn": "mid-turn pause", "end_of_turn": "end-of-turn pause"}
KIND_STYLES = {"semantic": "-", "silence": "--", "acoustic": ":"}
# Policy colours: none shared with the heads of a trace (tab:blue..red), one per policy name for the whole
# kernel, so a policy's decision lines in a trace and its curve on the trade-off plot look the same.
POLICY_PALETTE = ["black", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "navy",
                  "darkgoldenrod", "teal"]
_policy_colors: dict[str, str] = {}


def policy_color(name: str) -> str:
    """The colour of a policy in every figure: given in the order names are first drawn (the palette again
    after ten), then kept for that name."""
    if name not in _policy_colors:
        _policy_colors[name] = POLICY_PALETTE[len(_policy_colors) % len(POLICY_PALETTE)]
    return _policy_colors[name]


def _axes(ax, figsize):
    if ax is not None:
        return ax
    from .extras import require

    plt = require("matplotlib.pyplot", "lab.plots")

    return plt.subplots(figsize=figsize, constrained_layout=True)[1]


# ------------------------------------------------------------------------------------------ end of turn


def plot_eot_trace(result=None, decisions: dict | None = None, *, trace=None, words=(), pauses=(),
                   ax=None, title: str | None = None, show_words: bool = True):
    """End-of-turn probability of every head over stream time, over the reference turn.

    `result`: a lab.evaluate.ItemResult (its trace, reference words and pauses), or pass `trace`, `words`
    ({"text", "start", "end"}) and `pauses` ({"start", "end", "kind"}) yourself. `decisions`: policy label ->
    decision times (s), drawn as vertical lines with a marker on top. Word spans are grey bands with the
    word above; pauses are shaded red (mid-turn: a decision there cuts the speaker off) or green
    (end of turn: where a decision should come, as early as possible).
    """
    from matplotlib.patches import Patch

    if result is not None:
        trace, words, pauses = result.trace, result.ref_words, result.pauses
        title = title or f"End-of-turn probabilities: {result.name}"
    if trace is None:
        raise ValueError("plot_eot_trace needs an ItemResult or trace=")
    ax = _axes(ax, (11, 3.6))
    for p in pauses:
        ax.axvspan(p["start"], p["end"], color=PAUSE_COLORS.get(p["kind"], "tab:gray"), alpha=0.15, lw=0)
    for w in words:
        ax.axvspan(w["start"], w["end"], ymin=0.0, ymax=0.04, color="0.45", lw=0)
        if show_words:
            ax.text((w["start"] + w["end"]) / 2, 1.03, w["text"], ha="center", va="bottom", fontsize=7,
                    rotation=45, transform=ax.get_xaxis_transform(), clip_on=False)
    for h in trace.horizons:
        ax.plot(trace.times_s, trace.p_eot[h], lw=1.4, label=eot_column(h))
    if not trace.horizons:
        ax.text(0.5, 0.5, "no end-of-turn heads in this model", ha="center", transform=ax.transAxes)
    # Decision lines in the policy's own colour (policy_color), never a head's; dashed, then dash-dotted and
    # dotted for the 11th policy on, should a palette colour come round again in one figure.
    for k, (label, times) in enumerate((decisions or {}).items()):
        c, ls = policy_color(label), ["--", "-.", ":"][k // len(POLICY_PALETTE) % 3]
        for i, t in enumerate(times):
            ax.axvline(t, color=c, ls=ls, lw=1.1, label=f"decision: {label}" if i == 0 else None)
            ax.plot([t], [1.0], marker="v", color=c, ms=7, clip_on=False)
    handles, _ = ax.get_legend_handles_labels()
    kinds = sorted({p["kind"] for p in pauses})
    handles += [Patch(color=PAUSE_COLORS.get(k, "tab:gray"), alpha=0.3, label=PAUSE_LABELS.get(k, k)) for k in kinds]
    if words:
        handles.append(Patch(color="0.45", label="words (reference)"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    end = max([*trace.times_s[-1:], *(p["end"] for p in pauses), *(w["end"] for w in words), 0.1])
    ax.set(xlim=(0, end), ylim=(0, 1.0), xlabel="stream time (s)", ylabel="P(no speech within horizon)")
    ax.set_title(title or "End-of-turn probabilities", pad=34 if show_words and words else 6)
    return ax


def plot_eot_tradeoff(sweeps, ax=None, title: str = "End of turn: early cuts against detection latency",
                      latency_band_s: tuple[float, float] | None = (0.2, 1.5)):
    """Early-cut rate (% of turns) against median detection latency (s), one curve a policy, on one axes.

    `sweeps`: a DataFrame from lab.evaluate.sweep (or several concatenated), or a dict label -> DataFrame;
    curves are labelled by the dict key or the `policy` column, drawn solid (semantic), dashed (silence) or
    dotted (acoustic). `latency_band_s` shades the latency range a voice agent can live with.
    """
    import pandas as pd

    if isinstance(sweeps, dict):
        curves = list(sweeps.items())
    else:
        curves = [(name, group) for name, group in sweeps.groupby("policy", sort=False)]
    ax = _axes(ax, (7.5, 5))
    if latency_band_s:
        ax.axvspan(*latency_band_s, color="0.92", lw=0, zorder=0, label=f"{latency_band_s[0]:g}-"
                   f"{latency_band_s[1]:g} s median latency")
    for label, table in curves:
        table = pd.DataFrame(table).dropna(subset=["latency_p50_s"]).sort_values("latency_p50_s")
        kind = table["kind"].iloc[0] if "kind" in table and len(table) else "semantic"
        ax.plot(table.latency_p50_s, 100 * table.early_cut_rate, KIND_STYLES.get(kind, "-"), marker=".", ms=4,
                lw=1.5, color=policy_color(label), label=f"{label} ({kind})")
    ax.set(xlabel="median end-of-turn detection latency (s)", ylabel="early cuts (% of turns)", title=title,
           ylim=(0, None), xlim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax

