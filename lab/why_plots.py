"""Figures for "why did it cut me off?": the patching heatmap (lab.patching) and the attribution of one
decision lined up with the words (lab.attribution). Titled, axes labelled with units, as lab.plots."""

from __future__ import annotations

import numpy as np

from .extras import require


def _plt():
    return require("matplotlib.pyplot", "lab.why_plots")


def plot_patching(result, ax=None):
    """One heatmap per component: layers (rows) x patched steps (columns, by stream time), coloured by the
    effect on the decision's probability (red: towards "finished", blue: towards "not finished")."""
    frame = result.frame
    is_head = frame["component"].str.startswith("head ")
    heads, frame = frame[is_head], frame[~is_head]
    components = list(dict.fromkeys(frame["component"]))
    plt = _plt()
    if ax is None:
        n = len(components) + (not heads.empty)
        fig, axes = plt.subplots(n, 1, figsize=(10, 1.2 + 1.1 * n), squeeze=False, constrained_layout=True)
        axes = axes[:, 0]
    else:
        axes, fig = np.atleast_1d(ax), np.atleast_1d(ax)[0].figure
    if not heads.empty:  # single heads: layer x head, the patched step with the largest |effect|
        grid = heads.assign(head=heads["component"].str[5:].astype(int)).groupby(["layer", "head"])["effect"].agg(
            lambda e: e.loc[e.abs().idxmax()]).unstack()
        a = axes[len(components)]
        limit = max(float(grid.abs().max().max()), 1e-6)
        image = a.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower")
        a.set(xlabel="head", ylabel="layer", title="single heads (blocks.N.attn.heads): largest effect over the steps")
        fig.colorbar(image, ax=a, label="effect")
        axes = axes[:len(components)]
    limit = max(float(frame["effect"].abs().max()), 1e-6)
    times = np.sort(frame["time_s"].unique())
    step_s = float(np.median(np.diff(times))) if len(times) > 1 else 0.08
    image = None
    for a, component in zip(axes, components):
        grid = frame[frame.component == component].pivot(index="layer", columns="time_s", values="effect")
        image = a.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower",
                         extent=(times[0] - step_s / 2, times[-1] + step_s / 2, -0.5, len(grid) - 0.5))
        a.set_ylabel(f"{component}\nlayer")
        a.set_yticks(range(len(grid)))
    for a in axes:
        a.set_xlim(times[0] - step_s / 2, times[-1] + step_s / 2)
    axes[-1].set_xlabel("patched step (stream time, s)")
    fig.colorbar(image, ax=list(axes), label=f"effect on p_eot_{result.horizon_s:g}s")
    axes[0].set_title(f"Activation patching: clean -> corrupted, decision at {result.time_s:.2f} s "
                      f"(p clean {result.p_clean:.2f}, corrupted {result.p_corrupted:.2f})")
    return axes


def plot_attribution(attr, axes=None):
    """Top: each audio frame's share in the decision (occlusion bars, gradient x input line) over stream
    time, with the words the model wrote; bottom: each text token read, by occlusion."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True, constrained_layout=True)
    top, bottom = axes
    f = attr.frames
    width = float((f["end_s"] - f["start_s"]).iloc[0]) if len(f) else 0.08
    top.bar(f["start_s"] + width / 2, f["occlusion"], width=width * 0.9, color="tab:blue",
            label="occlusion: p - p with the frame silenced")
    twin = top.twinx()
    twin.plot(f["start_s"] + width / 2, f["grad_x_input"], color="tab:orange", lw=1.2, label="gradient x input")
    twin.set_ylabel("gradient x input")
    for w in attr.words:
        end = w.start_s + width if w.end_s is None else w.end_s  # an end not known yet: drawn as one frame
        top.axvspan(w.start_s, end, color="0.85", lw=0, zorder=0)
        top.text((w.start_s + end) / 2, 1.02, w.text, ha="center", va="bottom", fontsize=8, rotation=30,
                 transform=top.get_xaxis_transform(), clip_on=False)
    for a in (top, bottom):
        a.axvline(attr.time_s, color="black", ls="--", lw=1)
        a.axhline(0, color="0.5", lw=0.6)
    top.set_ylabel("occlusion (probability)")
    top.set_title(f"Why p_eot_{attr.horizon_s:g}s = {attr.p:.2f} at {attr.time_s:.2f} s (dashed line)", pad=30)
    lines = top.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    top.legend(handles=lines, fontsize=8, loc="upper left")
    t = attr.tokens[attr.tokens["piece"].str.len() > 0]
    bottom.bar(t["time_s"], t["occlusion"], width=width * 0.9, color="tab:green")
    for _, row in t[t["occlusion"].abs() > 0].iterrows():
        bottom.text(row["time_s"], row["occlusion"], row["piece"], ha="center",
                    va="bottom" if row["occlusion"] >= 0 else "top", fontsize=7)
    bottom.set(xlabel="stream time (s)", ylabel="occlusion (probability)",
               title="Text tokens read (written one step earlier), each replaced by PAD")
    return axes


def plot_ablation(case, found, policy, horizon_s: float = 2.0, ax=None):
    """The head's probability over the probe turn, as trained and with the ablation, with each one's
    decisions, the mid-turn pause shaded."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.6), constrained_layout=True)
    r = case.record
    ax.axvspan(case.pause["start"], case.pause["end"], color="tab:red", alpha=0.15, lw=0, label="mid-turn pause")
    for w in r["words"]:
        ax.text((w["start"] + w["end"]) / 2, 1.03, w["text"], ha="center", va="bottom", fontsize=8,
                transform=ax.get_xaxis_transform(), clip_on=False)
    runs = [("as trained", r["trace"], found["before"], "tab:blue")]
    if found["trace"] is not None:
        runs.append((f"{len(found['heads'])} head(s) ablated", found["trace"], found["after"], "tab:orange"))
    for label, trace, decisions, color in runs:
        ax.plot(trace.times_s, trace.head(horizon_s), color=color, lw=1.5, label=f"p_eot_{horizon_s:g}s, {label}")
        for d in decisions:
            ax.axvline(d, color=color, ls="--", lw=1)
    ax.axhline(getattr(policy, "threshold", 0.5), color="0.5", lw=0.8, ls=":", label="threshold")
    ax.set(xlabel="stream time (s)", ylabel="P(no speech within horizon)", ylim=(0, 1.02))
    ax.set_title(f"Ablation of heads {found['heads'][:8]}{' ...' if len(found['heads']) > 8 else ''}: "
                 f"decisions (dashed) {found['before']} -> {found['after']}", pad=22, fontsize=9)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax
