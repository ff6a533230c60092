"""Is the semantic end-of-turn policy's trade-off curve below the silence baselines'?

Criterion: at every baseline setting (energy-VAD silence duration, Silero VAD min_silence_duration_ms) whose
median detection latency is between 0.2 and 1.5 s, some semantic setting with no greater median latency
has at most half its early-cut rate.

Method, so that nothing is tuned on the test set:
  1. Stream corpus/val and corpus/test through the model (each item then 3 s of its own noise floor).
  2. On val only: sweep every semantic candidate (a threshold on each head, EMAs of the 2 s head, Unmute's
     hysteresis, a silence timer vetoed by the 2 s head) and keep the one that passes the criterion against
     the most val baseline settings.
  3. On test: sweep that policy and the baselines; check the criterion curve against curve (table 1).
  4. Stricter, held out: for each baseline setting, the semantic setting is picked on val (fewest early
     cuts among thresholds no slower than that baseline setting on val) and only then scored on test
     (table 2).
Writes bench/results/NAME.md, NAME.png (curves on test) and NAME_example.png (the
test item the chosen policy cuts earliest, at its held-out operating point for a 0.5 s silence baseline).

    .venv/bin/python bench/turns_tradeoff.py [--model PATH] [--limit N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab import evaluate, plots, turns  # noqa: E402
from lab.train import training_sentences  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voices import held_out_paths  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = tuple(sorted({*turns.ThresholdPolicy.sweep_values, 0.98, 0.985, 0.99, 0.995, 0.998}))
LATENCY_RANGE_S, FACTOR = (0.2, 1.5), 0.5
MAX_MISS = 0.05  # a semantic setting that never answers a turn in 20 cannot win by staying silent


def candidates(horizons) -> list:
    h = turns.default_horizon(horizons)
    return [*(turns.ThresholdPolicy(x) for x in horizons),
            *(turns.EMAPolicy(h, attack_s=a, release_s=0.04) for a in (0.08, 0.16, 0.32)),
            turns.HysteresisPolicy(h),
            *(turns.VetoedSilencePolicy(h, threshold=t) for t in (0.3, 0.5, 0.7, 0.9))]


def baselines() -> list:
    return [turns.SilencePolicy(), turns.SileroPolicy()]


def run(model, paths, limit, cache_dir, folder):
    """ItemResults of a corpus's items, kept in `cache_dir` (a local cache of our own outputs) for reruns."""
    stamp = int(Path(model.source, "model.safetensors").stat().st_mtime)
    key = f"{Path(folder).name}-{limit}-{len(paths)}-{Path(model.source).name}-{stamp}"
    path = Path(cache_dir) / f"{key}.pkl" if cache_dir else None
    if path and path.is_file():
        return pickle.loads(path.read_bytes())
    t0 = time.perf_counter()
    results = evaluate.run_items(model, paths, progress=True)
    print(f"{folder}: {len(results)} items streamed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(results))
    return results


def sweep(results, policy):
    fine = policy.kind == "semantic" and policy.sweep_param in ("threshold", "pause_above")
    return evaluate.sweep(results, policy, THRESHOLDS if fine else None)


def compare(semantic, baseline):
    """Table 1 for one baseline: curve against curve (lab.evaluate.compare_tradeoffs)."""
    return evaluate.compare_tradeoffs(semantic, baseline, LATENCY_RANGE_S, FACTOR, MAX_MISS)


def held_out(val_sem, test_sem, val_base, test_base) -> pd.DataFrame:
    """Table 2: thresholds picked on val for each baseline setting, scored on test."""
    rows = []
    for (_, vb), (_, tb) in zip(val_base.iterrows(), test_base.iterrows()):
        if not LATENCY_RANGE_S[0] <= tb.latency_p50_s <= LATENCY_RANGE_S[1]:
            continue
        ok = val_sem[(val_sem.latency_p50_s <= vb.latency_p50_s + 1e-9) & (val_sem.miss_rate <= MAX_MISS)]
        pick = ok.sort_values(["early_cut_rate", "latency_p50_s"]).iloc[0] if len(ok) else None
        t = None if pick is None else test_sem[test_sem.value == pick.value].iloc[0]
        rows.append({"baseline": tb.policy, "baseline_value": tb.value, "baseline_early_cut_rate": tb.early_cut_rate,
                     "baseline_latency_p50_s": tb.latency_p50_s,
                     "value": np.nan if t is None else t.value,
                     "early_cut_rate": np.nan if t is None else t.early_cut_rate,
                     "latency_p50_s": np.nan if t is None else t.latency_p50_s,
                     "miss_rate": np.nan if t is None else t.miss_rate,
                     "passes": t is not None and t.latency_p50_s <= tb.latency_p50_s + 1e-9
                     and t.miss_rate <= MAX_MISS and t.early_cut_rate <= FACTOR * tb.early_cut_rate + 1e-12})
    return pd.DataFrame(rows)


def fmt_table(table: pd.DataFrame, unit: dict) -> str:
    lines = ["| baseline | setting | early cuts | p50 latency | semantic setting | early cuts | p50 latency "
             "| miss | ratio | pass |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ratio = r.early_cut_rate / r.baseline_early_cut_rate if r.baseline_early_cut_rate else float("inf")
        verdict = "yes" if r.passes else "NO (" + ", ".join(
            why for why, bad in [("slower", r.latency_p50_s > r.baseline_latency_p50_s + 1e-9),
                                 ("misses", r.miss_rate > MAX_MISS), ("early cuts", ratio > FACTOR)] if bad) + ")"
        lines.append(f"| {r.baseline} | {r.baseline_value:g} {unit[r.baseline]} | {r.baseline_early_cut_rate:.1%} "
                     f"| {r.baseline_latency_p50_s:.3f} s | {r.value:g} | {r.early_cut_rate:.1%} "
                     f"| {r.latency_p50_s:.3f} s | {r.miss_rate:.1%} | {ratio:.2f} | {verdict} |")
    return "\n".join(lines)


def after_sentence_end(results, policy, folder) -> tuple[int, int, int]:
    """Of the turns `policy` cuts early: how many are cut within 0.6 s after the end of a complete sentence
    that the speaker follows with another (a sentence gap of 0.12-0.35 s in the synth corpus); and how many
    turns have more than one sentence."""
    cuts = evaluate.early_cuts(results, policy).drop_duplicates("item")
    near, multi = 0, 0
    for r in results:
        meta = json.loads((Path(folder) / f"{r.name}.json").read_text())
        ends = [r.ref_words[k - 1]["end"] for k in np.cumsum([len(s.split()) for s in meta["sentences"]])[:-1]]
        multi += bool(ends)
        decisions = evaluate.early_cuts([r], policy).decision_s if r.name in set(cuts["item"]) else []
        near += any(0 <= d - e <= 0.6 for d in decisions for e in ends)
    return len(cuts), near, multi


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: lab/data/models/dsm-tiny-en, else runs/dsm-tiny-en/model")
    ap.add_argument("--val", default=str(ROOT / "corpus/val"))
    ap.add_argument("--test", default=str(ROOT / "corpus/test-heldout-engine"),
                    help="default: turns spoken by FreeTTS, an engine the model never heard (make corpus)")
    ap.add_argument("--train", default=str(ROOT / "corpus"),
                    help="corpus root: items sharing a sentence with its training folders (train*) are dropped")
    ap.add_argument("--name", default="turns_tradeoff", help="result files: NAME.md, NAME.png, NAME_example.png")
    ap.add_argument("--limit", type=int, default=None, help="items per corpus (development only)")
    ap.add_argument("--cache", default=str(ROOT / "runs/turns_bench_cache"), help="'' to disable")
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    name = args.model or next((str(p) for p in (ROOT / "lab/data/models/dsm-tiny-en", ROOT / "runs/dsm-tiny-en/model")
                               if (p / "config.json").is_file()), None)
    model = lab.load(name)
    if not model.cfg.eot_horizons_s:
        sys.exit(f"{name}: {turns.NO_HEADS}")
    train = training_sentences(args.train)
    val, test = (run(model, held_out_paths(Path(f), train, args.limit)[0], args.limit, args.cache, f)
                 for f in (args.val, args.test))

    # 2. choose the semantic policy on val
    val_base = {b.name: sweep(val, b) for b in baselines()}
    scores = []
    for c in candidates(model.cfg.eot_horizons_s):
        s = sweep(val, c)
        checks = pd.concat([compare(s, vb) for vb in val_base.values()])
        ratio = (checks.early_cut_rate / checks.baseline_early_cut_rate.clip(lower=1e-9)).mean()
        scores.append({"policy": c, "sweep": s, "passes": int(checks.passes.sum()), "of": len(checks),
                       "mean_ratio": ratio})
    best = max(scores, key=lambda x: (x["passes"], -x["mean_ratio"]))
    chosen = best["policy"]
    # The heads alone (no silence timer), chosen the same way: what the model's probabilities do by themselves.
    heads_only = max((x for x in scores if not isinstance(x["policy"], turns.VetoedSilencePolicy)),
                     key=lambda x: (x["passes"], -x["mean_ratio"]))

    # 3. and 4. on test
    test_base = {b.name: sweep(test, b) for b in baselines()}
    test_sem = sweep(test, chosen)
    curve = pd.concat([compare(test_sem, tb) for tb in test_base.values()])
    strict = pd.concat([held_out(best["sweep"], test_sem, val_base[k], test_base[k]) for k in test_base])
    heads_curve = pd.concat([compare(sweep(test, heads_only["policy"]), tb) for tb in test_base.values()])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    others = [turns.ThresholdPolicy(h) for h in model.cfg.eot_horizons_s if turns.ThresholdPolicy(h) != chosen]
    curves = {f"{chosen.name} (chosen on val)": test_sem, **{p.name: sweep(test, p) for p in others[:2]},
              **test_base}
    ax = plots.plot_eot_tradeoff(curves, title=f"End of turn on corpus/test ({len(test)} turns): early cuts "
                                 "vs latency")
    ax.figure.savefig(out / f"{args.name}.png", dpi=120, bbox_inches="tight")

    # drill-down at the held-out operating point matched to a 0.5 s silence
    op = strict[(strict.baseline == turns.SilencePolicy().name) & np.isclose(strict.baseline_value, 0.5)]
    op_value = float(op.value.iloc[0]) if len(op) and np.isfinite(op.value.iloc[0]) else float(test_sem.value.iloc[0])
    operating = turns.with_value(chosen, op_value)
    cuts = evaluate.early_cuts(test, operating)
    if len(cuts):
        worst = cuts.sort_values("early_by_s", ascending=False).iloc[0]
        r = next(r for r in test if r.name == worst["item"])
        ax = plots.plot_eot_trace(r, {f"{chosen.sweep_param} {op_value:g}": operating.decide(r.trace),
                                      "silence 0.5 s": turns.SilencePolicy(0.5).decide(r.trace)})
        ax.figure.savefig(out / f"{args.name}_example.png", dpi=120, bbox_inches="tight")

    units = {turns.SilencePolicy().name: "s", turns.SileroPolicy().name: "ms"}
    why_failing = []
    for r in curve[~curve.passes].itertuples():
        n_cut, near, multi = after_sentence_end(test, turns.with_value(chosen, r.value), args.test)
        why_failing.append(f"- {r.baseline} {r.baseline_value:g} {units[r.baseline]}: needs at most "
                           f"{FACTOR * r.baseline_early_cut_rate:.1%} early cuts at a median latency <= "
                           f"{r.baseline_latency_p50_s:.3f} s, "
                           f"the best semantic setting ({chosen.sweep_param} {r.value:g}) cuts {r.early_cut_rate:.1%}; "
                           f"{near} of its {n_cut} cut turns are cut within 0.6 s after a complete sentence that "
                           f"the speaker follows with another ({multi} of {len(test)} turns have several sentences).")
    if why_failing:
        why_failing.append("")
    md = ["# End of turn: semantic policy against silence baselines\n",
          f"Model `{os.path.relpath(model.source, ROOT)}`"
          f" ({model.n_params / 1e6:.2f} M parameters, heads {list(model.cfg.eot_horizons_s)} s); "
          f"val: {len(val)} turns of `{os.path.relpath(args.val, ROOT)}`, "
          f"test: {len(test)} turns of `{os.path.relpath(args.test, ROOT)}` (seed never used in "
          f"training; items sharing a sentence with a training folder, `{os.path.relpath(args.train, ROOT)}/train*`, "
          f"dropped, overlap 0). "
          f"Each item is followed by 3 s of its own noise floor. Command: "
          f"`.venv/bin/python bench/turns_tradeoff.py {' '.join(argv if argv is not None else sys.argv[1:])}`.\n",
          f"Criterion: at every baseline setting with median detection latency in {LATENCY_RANGE_S[0]}-"
          f"{LATENCY_RANGE_S[1]} s, some semantic setting with no greater median latency has at most "
          f"{FACTOR:g} x its early-cut rate. Semantic settings that miss more than {MAX_MISS:.0%} of turns "
          "(no decision at all after the turn's end) do not count.\n",
          "## Semantic policy, chosen on val\n", "| candidate | baseline settings passed (val) | mean ratio |",
          "|---|---|---|"]
    md += [f"| {s['policy'].name}{' **(chosen)**' if s is best else ''} | {s['passes']}/{s['of']} "
           f"| {s['mean_ratio']:.2f} |" for s in scores]
    md += [f"\nChosen: `{chosen}`, swept over `{chosen.sweep_param}`. The heads alone (the best candidate "
           f"without a silence timer, `{heads_only['policy'].name}`) pass {int(heads_curve.passes.sum())}/"
           f"{len(heads_curve)} baseline settings on test, curve against curve.\n",
           "## Table 1: curve against curve on test\n", fmt_table(curve, units),
           f"\n**{int(curve.passes.sum())}/{len(curve)} baseline settings pass.**\n", *why_failing,
           "## Table 2: held out (setting picked on val, scored on test)\n", fmt_table(strict, units),
           f"\n**{int(strict.passes.sum())}/{len(strict)} baseline settings pass.**\n",
           f"## Early cuts at the held-out operating point for a 0.5 s silence ({chosen.sweep_param} {op_value:g})\n",
           f"{len(cuts)} early decisions; where they fell: "
           + (", ".join(f"{k} {v}" for k, v in cuts.cut_in.value_counts().items()) if len(cuts) else "none") + ".\n"]
    if len(cuts):
        show = cuts.sort_values("early_by_s", ascending=False).head(8)
        md += ["| item | decision | cut in | pause | said so far | still to say | p_eot_2s |",
               "|---|---|---|---|---|---|---|"]
        md += [f"| {r.item} | {r.decision_s:.2f} s | {r.cut_in} | {r.pause_s:.2f} s | {r.said_so_far} | "
               f"{r.still_to_say} | {getattr(r, 'p_eot_2s', float('nan')):.2f} |" for r in show.itertuples()]
    md += [f"\nFigures: `{args.name}.png` (curves on test), `{args.name}_example.png` (the earliest cut above).\n"]
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if curve.passes.all() else 1


if __name__ == "__main__":
    sys.exit(main())
