"""The turn-detection notebook's pieces, on top of lab.turns / lab.evaluate / lab.plots (the turn lab's API).

    folder = turn_items(40, seed=7)                     # held-out synthetic turns (cached), or your own folder
    results = evaluate.run_items(model, folder)         # every turn through the model, with a quiet tail
    sweeps = sweep_all(results, turns.default_policies(model.cfg.eot_horizons_s))
    TurnExplorer(results, sweeps)                       # sliders: move the thresholds, the views follow

The explorer redraws with matplotlib into an Output widget: the trade-off curves with each policy's current
operating point on them, and one item's trace with the decisions the current settings make.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import ipywidgets as W
import numpy as np
import pandas as pd


def turn_items(n: int = 40, seed: int = 7, folder: str | Path | None = None) -> Path:
    """A folder of items: `folder` if given (your recordings in the format of lab/items/format.py, checked
    here, or a synth folder), else `n` turns in the held-out voice, made once with
    `seed` and cached (under $DSM_LAB_CACHE, else the temp dir): the model never heard this voice."""
    from .. import synth

    if folder is not None:
        folder = Path(folder)
        from ..items import check_folder

        if not any(folder.glob("*.json")):
            raise FileNotFoundError(f"no items (*.json) in {folder}")
        problems = check_folder(folder)
        if problems:  # every problem at once, by file and field, rather than the first item that fails
            raise ValueError(f"{folder}: {len(problems)} problem(s):\n" + "\n".join(map(str, problems[:20])))
        return folder
    root = Path(os.environ.get("DSM_LAB_CACHE") or Path(tempfile.gettempdir()) / "dsm-lab-cache")
    out = root / f"turns-heldout-n{n}-seed{seed}"
    if len(list(out.glob("*.json"))) < n:
        synth.generate_corpus(out, n=n, seed=seed, voices=[synth.HELDOUT_VOICE], workers=1, progress=False)
    return out


def sweep_all(results, policies) -> dict[str, pd.DataFrame]:
    """Each policy swept over its parameter: name -> table (lab.evaluate.sweep)."""
    from .. import evaluate

    return {p.name: evaluate.sweep(results, p) for p in policies}


def decisions(result, policies) -> dict[str, list[float]]:
    """What each policy decides on one item: name -> decision times (s)."""
    return {p.name: p.decide(result.trace) for p in policies}


def operating_points(results, policies) -> pd.DataFrame:
    """Each policy at its current setting: early-cut rate, detection latency, misses."""
    from .. import evaluate

    rows = []
    for p in policies:
        value = getattr(p, p.sweep_param)
        row = evaluate.sweep(results, p, [value]).iloc[0]
        rows.append({"policy": p.name, "kind": p.kind, "parameter": p.sweep_param, "value": value, **{
            k: row[k] for k in ("early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate")}})
    return pd.DataFrame(rows).round(3)


def fixed_decimals(values) -> int:
    """The fewest decimals (at most 3) that write every value exactly: all labels of a slider then have one
    format, instead of "0.1" next to "0.125"."""
    return next((d for d in range(4) if all(abs(round(float(v), d) - float(v)) < 1e-9 for v in values)), 3)


def summary_table(results) -> pd.DataFrame:
    """lab.evaluate.transcription_summary as a one-row table, rounded (a dict would print raw)."""
    from .. import evaluate

    return pd.DataFrame([evaluate.transcription_summary(results)]).round(3)


# The drill-down's columns, in reading order: where the cut fell, what was said and heard by then, and each
# head's probability at the decision; the windows of probabilities around it stay in `early_cuts` itself.
CUT_COLUMNS = ["item", "decision_s", "early_by_s", "cut_in", "silence_so_far_s", "said_so_far", "transcript_so_far",
               "still_to_say"]


def cut_table(cuts: pd.DataFrame, rows: int = 10) -> pd.DataFrame:
    """The first `rows` early cuts of lab.evaluate.early_cuts with the columns that explain them, text and
    probabilities included (the full table has 20-odd columns; a notebook shows the first ten)."""
    heads = [c for c in cuts.columns if c.startswith("p_eot_") and not c.endswith("_around")]
    return cuts[CUT_COLUMNS + heads].head(rows).round(3).reset_index(drop=True)


def best_at_matched_latency(sweeps: dict[str, pd.DataFrame], baseline: str, latency_s=(0.2, 1.5)) -> pd.DataFrame:
    """For every policy: its fewest early cuts at a median latency no worse than the baseline's at each
    baseline setting in `latency_s` (lab.evaluate.compare_tradeoffs), summarised one row a policy."""
    from .. import evaluate

    rows = []
    for name, table in sweeps.items():
        if name == baseline:
            continue
        cmp = evaluate.compare_tradeoffs(table, sweeps[baseline], latency_s)
        if cmp.empty:
            continue
        rows.append({"policy": name, "baseline settings compared": len(cmp),
                     "early cuts (policy, mean)": cmp.early_cut_rate.mean(),
                     "early cuts (baseline, mean)": cmp.baseline_early_cut_rate.mean(),
                     "halves the baseline's early cuts": f"{int(cmp.passes.sum())} / {len(cmp)}"})
    return pd.DataFrame(rows).round(3)


class TurnExplorer(W.VBox):
    """Sliders for a semantic policy's threshold and the silence baseline's duration, and an item picker;
    the trade-off curves show both operating points, the trace shows both policies' decisions."""

    def __init__(self, results, sweeps: dict[str, pd.DataFrame] | None = None, semantic=None, baseline=None,
                 item: int = 0):
        from .. import turns

        horizons = results[0].trace.horizons if results and results[0].trace is not None else ()
        self.results = results
        self.semantic = semantic or (turns.ThresholdPolicy(turns.default_horizon(horizons)) if horizons else None)
        self.baseline = baseline or turns.SilencePolicy()
        self.policies = [p for p in (self.semantic, self.baseline) if p is not None]
        self.sweeps = sweeps if sweeps is not None else sweep_all(results, self.policies)
        self.sliders = {}
        for p in self.policies:
            values = [float(v) for v in p.sweep_values]
            d = fixed_decimals(values)
            # description_width "initial": the label keeps its length ("min_silence_s" was cut to "min_silen...").
            self.sliders[p.name] = W.SelectionSlider(options=[(f"{v:.{d}f}", v) for v in values],
                                                     value=_closest(values, getattr(p, p.sweep_param)),
                                                     description=f"{p.sweep_param}", continuous_update=False,
                                                     style={"description_width": "initial"},
                                                     layout=W.Layout(width="520px"))
            self.sliders[p.name].observe(self._changed, names="value")
        self.item = W.Dropdown(options=[(r.name, i) for i, r in enumerate(results)], value=item,
                               description="item")
        self.item.observe(self._changed, names="value")
        self.table = W.HTML()
        self.out = W.Output()
        labels = [W.HTML(f"<b>{p.name}</b> ({p.kind})") for p in self.policies]
        rows = [W.HBox([label, self.sliders[p.name]]) for label, p in zip(labels, self.policies)]
        super().__init__([*rows, self.item, self.table, self.out])
        self._changed()

    def current(self) -> list:
        from .. import turns

        return [turns.with_value(p, self.sliders[p.name].value) for p in self.policies]

    def _changed(self, change=None):
        # One number format whatever the values (to_html alone writes 0.5 after 0.125 and changes widths).
        self.table.value = operating_points(self.results, self.current()).to_html(index=False,
                                                                                 float_format="{:.3f}".format)
        self.out.clear_output(wait=True)
        with self.out:
            from IPython.display import display

            display(self.figure())

    def figure(self):
        """The trade-off curves with the current operating points, and the selected item's trace."""
        from .. import plots
        from ..extras import require

        plt = require("matplotlib.pyplot", "lab.widgets")

        policies = self.current()
        result = self.results[self.item.value]
        fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(15, 4.4), width_ratios=[1, 1.7])
        plots.plot_eot_tradeoff({p.name: self.sweeps[p.name] for p in self.policies if p.name in self.sweeps},
                                ax=ax_c)
        points = operating_points(self.results, policies)
        ax_c.plot(points.latency_p50_s, 100 * points.early_cut_rate, "o", color="k", ms=8, mfc="none",
                  label="current settings")
        ax_c.legend(fontsize=7)
        plots.plot_eot_trace(result, decisions(result, policies), ax=ax_t)
        fig.tight_layout()
        plt.close(fig)  # shown once, by whoever displays it
        return fig


def _closest(values, target) -> float:
    return float(values[int(np.argmin(np.abs(np.asarray(values) - float(target))))])
