"""Evaluation of a model on a folder of items (lab/items/format.py: yours, or made by `dsm-lab synth`): WER,
emission latency, end-of-turn measures.

Each item is streamed on its own tokens (no teacher forcing), followed by `tail_s` seconds in which the
speaker stays quiet, as a voice agent would hear it: the end-of-turn heads and the silence baselines need
that time to decide. The tail continues the recording's noise floor by default (a microphone is never
digitally silent, and the model was trained on noisy audio); `tail="zeros"` gives exact silence.

End of turn: `sweep(results, policy)` judges a policy (lab.turns) at each value of its swept parameter,
`compare_tradeoffs` tests one curve against another, `early_cuts` lists every early cut for a drill-down.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics, turns
from .events import eot_column
from .items import timed


@dataclass
class ItemResult:
    name: str
    reference: str
    hypothesis: str
    ref_words: list[dict]  # {"text", "start", "end"} in seconds
    words: list  # lab.Word: what the model wrote, with emitted_s
    steps: pd.DataFrame
    turn_start_s: float  # the first word's start
    turn_end_s: float  # the last word's end
    turns: list[dict] = field(default_factory=list)  # reference turns {"start", "end"}
    pauses: list[dict] = field(default_factory=list)  # {"start", "end", "kind": mid_turn | end_of_turn}
    trace: turns.Trace | None = None  # what the end-of-turn policies see (audio with its tail)


LONG_ITEM_S = 600.0  # items longer than this are streamed from disk a block at a time (lab.recording_pass)


def pad_tail(audio: np.ndarray, sample_rate: int, tail_s: float, tail: str = "noise", seed: int = 0):
    """`audio` followed by `tail_s` seconds of the speaker staying quiet: white noise at the recording's
    noise floor (the 10th percentile of its 20 ms frame levels), or exact zeros."""
    n = int(round(tail_s * sample_rate))
    if tail == "zeros" or n == 0:
        return np.concatenate([audio, np.zeros(n, dtype=audio.dtype)])
    if tail != "noise":
        raise ValueError(f"tail must be 'noise' or 'zeros', not {tail!r}")
    frame = int(0.02 * sample_rate)
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame).astype(np.float64)
    rms = float(np.percentile(np.sqrt((frames**2).mean(1)), 10)) if len(frames) else 0.0
    noise = np.random.default_rng(seed).standard_normal(n) * rms
    return np.concatenate([audio, noise.astype(audio.dtype)])


def item_paths(source: str | Path | list, limit: int | None = None) -> list[Path]:
    """The items (NAME.json) of a folder, in name order, or a given list of their paths; the first `limit`."""
    paths = sorted(Path(source).glob("*.json")) if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not paths:
        raise ValueError(f"no items (*.json) in {source}")
    return paths[:limit]


def each_item(source, limit: int | None = None, progress: bool = False):
    """(name, audio, meta) for every item of `source` (see item_paths), read and checked by
    lab.items.read_item (several channels mixed down): the one loop that every evaluation (WER, turn lab,
    latency lab, the notebooks' tables) runs over."""
    from .items import read_item as load_item

    paths = item_paths(source, limit)
    if progress:
        from tqdm import tqdm

        paths = tqdm(paths, unit="item")
    for p in paths:
        audio, meta = load_item(p)
        yield p.stem, audio, meta


def run_items(model, source, tail_s: float = 3.0, limit: int | None = None, progress=False,
              tail: str = "noise", alignment: str | None = None) -> list[ItemResult]:
    """Stream every item of `source` (a folder or a list of NAME.json paths) through `model` (None: no model,
    for the baselines alone), each followed by `tail_s` of the speaker staying quiet.

    An item longer than `LONG_ITEM_S` (a meeting, a day of calls) is never read whole: it goes through
    lab.recording_pass a block at a time, in constant memory (a progress bar with `progress`), without a
    tail (a long recording has its own silences); every policy and baseline runs on it the same way."""
    from .items import read_item, read_meta

    results = []
    paths = item_paths(source, limit)
    if progress:
        from tqdm import tqdm

        paths = tqdm(paths, unit="item")
    for path in paths:
        if read_meta(path)["duration"] > LONG_ITEM_S:
            results.append(_streamed_result(model, path, progress))
            continue
        name, (audio, meta) = path.stem, read_item(path)
        rate = meta["sample_rate"]
        padded = pad_tail(audio, rate, tail_s, tail, seed=zlib.crc32(name.encode()))
        words = timed(meta["words"])  # the reference times (an item may give some words as text alone)
        if model is not None:
            t = model.transcribe((padded, rate), alignment=alignment)
            text, hyp, steps = t.text, t.words, t.steps
        else:
            text, hyp, steps = "", [], pd.DataFrame({"step": [], "time_s": []})
        trace = turns.Trace.from_steps(steps, padded, rate, name, words=hyp)
        spans = words or meta["turns"]  # where the speech is: the words', else the turns' times
        start, end = (spans[0]["start"], spans[-1]["end"]) if spans else (0.0, 0.0)
        results.append(ItemResult(name, " ".join(w["text"] for w in meta["words"]), text, words, hyp, steps,
                                  start, end, meta["turns"], meta["pauses"], trace))
    return results


def _streamed_result(model, path: Path, progress: bool) -> ItemResult:
    """A long item through lab.recording_pass: the trace's features computed block by block."""
    from .items import read_meta
    from .recording_pass import stream_recording

    meta = read_meta(path)
    rec = stream_recording(model, path.parent / meta["audio"], progress=bool(progress), silero_signals="mix")
    words = timed(meta["words"])
    spans = words or meta["turns"]
    start, end = (spans[0]["start"], spans[-1]["end"]) if spans else (0.0, 0.0)
    return ItemResult(path.stem, " ".join(w["text"] for w in meta["words"]), " ".join(w.text for w in rec.words),
                      words, rec.words, rec.steps, start, end, meta["turns"], meta["pauses"], rec.trace())


def transcription_summary(results: list[ItemResult]) -> dict:
    """WER, emission latency p50/p90 and, over the words matched by metrics.match_words, the mean error of
    word starts (`timestamp_error_s`: |model start - reference start|) and of word ends (`end_error_s`, over
    the words whose end an EPAD gave; `ends_known`: their share)."""
    lat = np.concatenate([metrics.emission_latencies(r.ref_words, r.words) for r in results])
    pairs = [(r.ref_words[i], r.words[j]) for r in results
             for i, j in metrics.match_words([w["text"] for w in r.ref_words], [w.text for w in r.words])]
    ts_err = [abs(w.start_s - ref["start"]) for ref, w in pairs]
    end_err = [abs(w.end_s - ref["end"]) for ref, w in pairs if w.end_s is not None]
    p = metrics.percentiles(lat)
    return {"items": len(results), "words": sum(len(r.ref_words) for r in results),
            "wer": metrics.wer([r.reference for r in results], [r.hypothesis for r in results]),
            "emission_latency_p50_s": p["p50"], "emission_latency_p90_s": p["p90"],
            "timestamp_error_s": float(np.mean(ts_err)) if ts_err else float("nan"),
            "end_error_s": float(np.mean(end_err)) if end_err else float("nan"),
            "ends_known": len(end_err) / len(pairs) if pairs else float("nan")}


# ------------------------------------------------------------------------------------------ end of turn


def outcomes(results: list[ItemResult], policy) -> list[metrics.TurnOutcome]:
    """Every reference turn of every item, judged against the policy's decisions on that item."""
    return [o for r in results for o in metrics.judge_item(policy.decide(r.trace), r.turns)]


def sweep(results: list[ItemResult], policy, values=None) -> pd.DataFrame:
    """One row per value of the policy's swept parameter: the policy's parameters and its turn summary."""
    values = policy.sweep_values if values is None else values
    rows = []
    for v in values:
        p = turns.with_value(policy, v)
        rows.append({"policy": policy.name, "kind": p.kind, "value": float(v), **turns.params(p),
                     **metrics.summarize_turns(outcomes(results, p))})
    return pd.DataFrame(rows)


THRESHOLDS = turns.ThresholdPolicy.sweep_values
SILENCES_S = turns.SilencePolicy.sweep_values


_SUMMARY = ["turns", "early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate"]


def sweep_semantic(results, horizon_s: float, thresholds=THRESHOLDS) -> pd.DataFrame:
    """`sweep` of ThresholdPolicy, in the columns `dsm-lab eval` prints (policy, horizon_s, threshold, ...)."""
    table = sweep(results, turns.ThresholdPolicy(horizon_s), thresholds)
    return table.assign(policy=f"{eot_column(horizon_s)} > th")[["policy", "horizon_s", "threshold", *_SUMMARY]]


def sweep_silence(results, durations=SILENCES_S) -> pd.DataFrame:
    table = sweep(results, turns.SilencePolicy(), durations)
    return table.assign(policy="silence >= s")[["policy", "min_silence_s", *_SUMMARY]]


def pick_threshold(sweep: pd.DataFrame, max_miss: float = 0.05, max_latency_s: float = 1.5) -> float:
    """The threshold with the fewest early cuts among those that rarely miss and answer in time."""
    ok = sweep[(sweep.miss_rate <= max_miss) & (sweep.latency_p50_s <= max_latency_s)]
    if ok.empty:
        ok = sweep
    best = ok.sort_values(["early_cut_rate", "latency_p50_s"]).iloc[0]
    return float(best.threshold)


def matched_silence_baseline(results, latency_p50_s: float) -> dict:
    """The silence-duration setting whose median detection latency is closest to `latency_p50_s`."""
    sweep = sweep_silence(results)
    row = sweep.iloc[(sweep.latency_p50_s - latency_p50_s).abs().argsort().iloc[0]]
    return row.to_dict()


def compare_tradeoffs(candidate: pd.DataFrame, baseline: pd.DataFrame, latency_range_s=(0.2, 1.5),
                      factor: float = 0.5, max_miss: float = 1.0) -> pd.DataFrame:
    """Is the candidate's curve below the baseline's? For each baseline setting whose median latency is in
    `latency_range_s`: the candidate setting with the fewest early cuts among those no slower at the median
    (and missing at most `max_miss` of turns), and whether its early-cut rate is at most `factor` times the
    baseline's. Both tables come from `sweep`."""
    lo, hi = latency_range_s
    rows = []
    for _, b in baseline[(baseline.latency_p50_s >= lo) & (baseline.latency_p50_s <= hi)].iterrows():
        ok = candidate[(candidate.latency_p50_s <= b.latency_p50_s + 1e-9) & (candidate.miss_rate <= max_miss)]
        best = ok.sort_values(["early_cut_rate", "latency_p50_s"]).iloc[0] if len(ok) else None
        rows.append({"baseline": b.policy, "baseline_value": b.value, "baseline_early_cut_rate": b.early_cut_rate,
                     "baseline_latency_p50_s": b.latency_p50_s, "baseline_miss_rate": b.miss_rate,
                     "value": np.nan if best is None else best.value,
                     "early_cut_rate": np.nan if best is None else best.early_cut_rate,
                     "latency_p50_s": np.nan if best is None else best.latency_p50_s,
                     "miss_rate": np.nan if best is None else best.miss_rate,
                     "passes": best is not None and best.early_cut_rate <= factor * b.early_cut_rate + 1e-12})
    return pd.DataFrame(rows)


def early_cuts(results: list[ItemResult], policy, window_s: float = 0.4) -> pd.DataFrame:
    """Drill-down: one row per early cut (a decision before the end of its turn's last word), with what had
    been said and transcribed by then, each head's probability at the decision and around it (the steps
    within `window_s`: p_eot_{h}s_around), and where the decision fell (`cut_in`, see metrics.locate): the
    pause that fooled the policy (pause_start_s, pause_end_s, pause_s, silence_so_far_s; NaN when the
    decision fell inside a word, then named in `word`)."""
    rows = []
    for r in results:
        decisions = policy.decide(r.trace)
        starts = [t["start"] for t in r.turns] + [float("inf")]
        for k, turn in enumerate(r.turns):
            for d in (d for d in decisions if turn["start"] <= d < turn["end"] and d < starts[k + 1]):
                place = metrics.locate(d, r.ref_words, r.pauses)
                in_word = place["where"] == "speech"
                start, end = (np.nan, np.nan) if in_word else (place["start_s"], place["end_s"])
                row = {"item": r.name, "turn": k, "policy": policy.name, "decision_s": d, "turn_end_s": turn["end"],
                       "early_by_s": turn["end"] - d, "cut_in": place["where"],
                       "word": next((w["text"] for w in r.ref_words if w["start"] <= d < w["end"]), ""),
                       "pause_start_s": start, "pause_end_s": end, "pause_s": end - start,
                       "silence_so_far_s": d - start,
                       "said_so_far": " ".join(w["text"] for w in r.ref_words if w["end"] <= d),
                       "transcript_so_far": " ".join(w.text for w in r.words if w.emitted_s <= d),
                       "still_to_say": " ".join(w["text"] for w in r.ref_words if w["end"] > d)}
                t = r.trace.times_s
                i = int(np.argmin(np.abs(t - d))) if len(t) else None
                near = np.abs(t - d) <= window_s + 1e-9
                for h in r.trace.horizons:
                    row[eot_column(h)] = float(r.trace.p_eot[h][i]) if i is not None else np.nan
                    row[eot_column(h) + "_around"] = tuple(np.round(r.trace.p_eot[h][near], 3))
                rows.append(row)
    columns = ["item", "turn", "policy", "decision_s", "turn_end_s", "early_by_s", "cut_in", "word", "pause_start_s",
               "pause_end_s", "pause_s", "silence_so_far_s", "said_so_far", "transcript_so_far", "still_to_say"]
    return pd.DataFrame(rows, columns=columns + [c for c in (rows[0] if rows else {}) if c not in columns])


def turns_cli(args) -> int:
    """`dsm-lab turns DIR [--model M] [--limit N] [--json]`: sweep every default policy over a folder of items."""
    import json
    import sys

    from .checkpoint import load

    model = load(args.model)
    if not model.cfg.eot_horizons_s:
        print(f"dsm-lab turns: {model.cfg.name}: {turns.NO_HEADS}; running the baselines only", file=sys.stderr)
    results = run_items(model, args.dir, limit=args.limit, progress=not args.json)
    keys = ("early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate")
    for policy in turns.default_policies(model.cfg.eot_horizons_s):
        table = sweep(results, policy)
        if not args.json:
            print(f"\n{policy.name} ({policy.kind}), sweeping {policy.sweep_param}:")
            print(table[[policy.sweep_param, *keys]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            continue
        for row in table.to_dict("records"):  # NaN (no latency: every turn cut or missed) -> null
            print(json.dumps({"policy": policy.name, "kind": policy.kind,
                              "params": turns.params(turns.with_value(policy, row["value"])),
                              **{k: round(row[k], 4) if np.isfinite(row[k]) else None for k in keys},
                              "turns": int(row["turns"])}), flush=True)
    return 0
