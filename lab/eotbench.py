"""The protocol of the public end-of-turn benchmark (LiveKit's eot-bench), so that our numbers line up with
everyone's.

The benchmark's unit is a *silence span*: every pause of at least 100 ms in a user turn. The last span of a
turn is its end (label "eot"), every earlier one a pause to listen through ("hold"). A model gives, at every
moment of a span, a probability that the turn is over; a policy acts on it with three knobs, swept jointly:

- `threshold`: the probability needed (strictly above); the span's *fire time* is the silence duration at
  the first score above it (never, if none);
- `action_delay`: the least silence before the agent may act: it acts at max(action_delay, fire time);
- `timeout`: the most silence it waits: it acts then whatever the model says (timeout >= action_delay).

A hold span is a *false cut-off* when the agent acts before it ends (it lasts longer than the timeout, or
than the action time of a fire). The *latency* of an eot span is its action time (the timeout when the model
never fired in time). Hold spans shorter than 0.2 s or longer than 5 s are left out, as eot-bench does.
Reported per policy (a score and the sweep over it), as eot-bench's operating points:

- false_cutoff_rate_300ms / _600ms: the fewest false cut-offs of any setting whose mean latency is at most
  0.3 s / 0.6 s (None: no setting is that fast);
- latency_at_5pct_s / _10pct_s: the least mean latency of any setting with at most 5 % / 10 % false cut-offs.
The "vad" row is eot-bench's baseline: a silence timer alone (act after `delay` of silence).

Data: a folder in eot-bench's layout (the Hugging Face dataset livekit/eot-bench-data: parquet files, rows
with id, language, audio {bytes | array, sampling_rate}, silence_spans [{start, end}]), or a folder of our
synth items, whose spans are the gaps between their words.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

THRESHOLDS = np.round(np.arange(0.0, 1.001, 0.01), 2)
ACTION_DELAYS = np.round(np.arange(0.2, 1.001, 0.1), 2)
TIMEOUTS = np.round(np.arange(1.0, 3.501, 0.5), 2)
MIN_SPAN_S, MIN_HOLD_S, MAX_HOLD_S = 0.1, 0.2, 5.0
EPS = 1e-9


@dataclass
class Turn:
    """One user turn: its audio and its silence spans ({start, end, label}), labelled as eot-bench does."""

    id: str
    language: str
    audio: np.ndarray
    sample_rate: int
    spans: list[dict]


def label_spans(spans, min_span_s: float = MIN_SPAN_S) -> list[dict]:
    """The last span of a turn is "eot", the others "hold"; spans shorter than `min_span_s` are dropped."""
    spans = [{"start": float(s["start"]), "end": float(s["end"])} for s in spans]
    out = [{**s, "label": "eot" if i == len(spans) - 1 else "hold"} for i, s in enumerate(spans)]
    return [s for s in out if s["end"] - s["start"] >= min_span_s - EPS]


def _audio(value, where: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if isinstance(value, dict) and value.get("bytes") is not None:
        audio, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
        return audio.mean(1), int(rate)
    if isinstance(value, dict) and value.get("array") is not None:
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    raise ValueError(f"{where}: audio must be {{'bytes': ...}} or {{'array': ..., 'sampling_rate': ...}}")


def load_eotbench(folder, limit: int | None = None) -> list[Turn]:
    """Turns from every parquet file under `folder` (eot-bench's layout), in file and row order."""
    from .extras import require

    require("pyarrow", "reading eot-bench's parquet files")
    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise ValueError(f"no parquet files under {folder}")
    turns = []
    for f in files:
        table = pd.read_parquet(f)
        missing = [c for c in ("id", "language", "audio", "silence_spans") if c not in table.columns]
        if missing:
            raise ValueError(f"{f}: missing eot-bench columns {missing}; it has {list(table.columns)}")
        for _, row in table.iterrows():
            audio, rate = _audio(row["audio"], f"{f} row {row['id']}")
            turns.append(Turn(str(row["id"]), str(row["language"]), audio, rate, label_spans(row["silence_spans"])))
            if limit is not None and len(turns) >= limit:
                return turns
    return turns


def synth_turns(folder, limit: int | None = None) -> list[Turn]:
    """Our items as eot-bench turns. An item in the labelled format (its JSON says "format", as imports and
    pre-labelling write it): its pauses, "shift" read as "eot". A synth item: every gap between words, and
    the silence after the last word (the sentence gaps the synth does not list count as holds)."""
    from .evaluate import each_item

    out = []
    for name, audio, meta in each_item(folder, limit):
        if "format" in meta:
            spans = [{"start": p["start"], "end": p["end"], "label": "eot" if p["label"] == "shift" else "hold"}
                     for p in meta["pauses"] if p["end"] - p["start"] >= MIN_SPAN_S - EPS]
            out.append(Turn(name, meta.get("language", "en"), audio, meta["sample_rate"], spans))
            continue
        w = meta["words"]
        gaps = [{"start": a["end"], "end": b["start"]} for a, b in zip(w, w[1:])]
        gaps.append({"start": w[-1]["end"], "end": len(audio) / meta["sample_rate"]})
        out.append(Turn(name, "en", audio, meta["sample_rate"], label_spans(gaps)))
    return out


def span_scores(times_s, scores, spans) -> list[np.ndarray]:
    """Per span, (silence duration, score) of the steps that ran inside it (after its start, by its end)."""
    t, p = np.asarray(times_s, float), np.asarray(scores, float)
    out = []
    for s in spans:
        inside = (t > s["start"] + EPS) & (t <= s["end"] + EPS)
        out.append(np.stack([t[inside] - s["start"], p[inside]], 1))
    return out


def _fire_times(scored: list[np.ndarray], threshold: float) -> np.ndarray:
    fire = np.full(len(scored), np.inf)
    for i, sp in enumerate(scored):
        above = np.flatnonzero(sp[:, 1] > threshold) if len(sp) else []
        if len(above):
            fire[i] = sp[above[0], 0]
    return fire


def sweep(spans: pd.DataFrame, scored: list[np.ndarray], thresholds=THRESHOLDS, action_delays=ACTION_DELAYS,
          timeouts=TIMEOUTS) -> pd.DataFrame:
    """One row per (threshold, action_delay, timeout): cutoff_rate over hold spans, mean_latency over eot
    spans. `spans` has columns label and duration_s, `scored` the span_scores of each row."""
    hold, eot = (spans["label"] == "hold").to_numpy(), (spans["label"] == "eot").to_numpy()
    if not hold.any() or not eot.any():
        raise ValueError(f"the eot-bench protocol needs hold and eot spans; got {hold.sum()} hold, {eot.sum()} eot")
    dur = spans["duration_s"].to_numpy(float)
    rows = []
    for th in thresholds:
        fire = _fire_times(scored, float(th))
        for ad in action_delays:
            act = np.maximum(ad, fire)
            for to in timeouts:
                if to + EPS < ad:
                    continue
                cut = (dur[hold] > to + EPS) | (np.isfinite(fire[hold]) & (dur[hold] > act[hold] + EPS))
                detected = np.isfinite(fire[eot]) & (act[eot] <= to + EPS)
                latency = np.where(detected, act[eot], to)  # a turn end the model missed waits for the timeout
                rows.append({"threshold": float(th), "action_delay": float(ad), "timeout": float(to),
                             "cutoff_rate": float(cut.mean()), "mean_latency": float(latency.mean()),
                             "timeout_rate": float((~detected).mean())})
    return pd.DataFrame(rows)


def vad_sweep(spans: pd.DataFrame, delays) -> pd.DataFrame:
    """eot-bench's baseline: act after `delay` of silence, whatever was said."""
    hold = spans[spans["label"] == "hold"]["duration_s"].to_numpy(float)
    return pd.DataFrame([{"threshold": np.nan, "action_delay": float(d), "timeout": float(d),
                          "cutoff_rate": float((hold > d + EPS).mean()), "mean_latency": float(d),
                          "timeout_rate": 0.0} for d in delays])


def operating_points(table: pd.DataFrame) -> dict:
    """eot-bench's four operating points of a sweep, each with the setting that reaches it."""
    out = {}
    for key, budget_col, budget, best_col in (("false_cutoff_rate_300ms", "mean_latency", 0.3, "cutoff_rate"),
                                              ("false_cutoff_rate_600ms", "mean_latency", 0.6, "cutoff_rate"),
                                              ("latency_at_5pct_s", "cutoff_rate", 0.05, "mean_latency"),
                                              ("latency_at_10pct_s", "cutoff_rate", 0.10, "mean_latency")):
        ok = table[table[budget_col] <= budget + EPS]
        if ok.empty:
            out[key], out[key + "_params"] = None, None
            continue
        best = ok.sort_values([best_col, budget_col, "timeout", "action_delay", "threshold"], kind="stable").iloc[0]
        out[key] = round(float(best[best_col]), 4)
        out[key + "_params"] = {k: (None if pd.isna(best[k]) else float(best[k]))
                                for k in ("threshold", "action_delay", "timeout")}
    return out


def score_turns(model, turns: list[Turn], tail_s: float = float(TIMEOUTS.max()) + 0.5, progress: bool = False):
    """Stream every turn through `model`, followed by `tail_s` of the speaker staying quiet (the eot span
    then runs on to the end of that tail when it reached the end of the audio). Returns the span table
    (id, span_index, label, duration_s) and, per score name, the span_scores of every span: each head of the
    model, and the moving average EMAPolicy reads."""
    from .evaluate import pad_tail
    from .trace import Trace, default_horizon
    from .turns import EMAPolicy

    rows, scores = [], {}
    for k, turn in enumerate(turns):
        padded = pad_tail(turn.audio, turn.sample_rate, tail_s, seed=k)
        end = len(padded) / turn.sample_rate
        spans = [dict(s, end=end) if s["label"] == "eot" and s["end"] >= len(turn.audio) / turn.sample_rate - 0.01
                 else s for s in turn.spans]
        trace = Trace.from_steps(model.transcribe((padded, turn.sample_rate)).steps, padded, turn.sample_rate)
        named = {f"p_eot_{h:g}s": trace.p_eot[h] for h in trace.horizons}
        if trace.horizons:
            ema = EMAPolicy(default_horizon(trace.horizons))
            named[f"ema p_eot_{ema.horizon_s:g}s"] = trace.smoothed(ema.horizon_s, ema.attack_s, ema.release_s,
                                                                    ema.initial)
        for name, values in named.items():
            scores.setdefault(name, []).extend(span_scores(trace.times_s, values, spans))
        rows += [{"id": turn.id, "span_index": i, "label": s["label"], "duration_s": s["end"] - s["start"]}
                 for i, s in enumerate(spans)]
        if progress:
            print(f"{turn.id}: {len(spans)} spans", flush=True)
    return pd.DataFrame(rows, columns=["id", "span_index", "label", "duration_s"]), scores


def protocol_rows(spans: pd.DataFrame, scores: dict) -> list[dict]:
    """One row per policy (each score swept, then the silence-timer baseline): spans counted, and eot-bench's
    operating points with the setting of each."""
    keep = (spans["label"] == "eot") | spans["duration_s"].between(MIN_HOLD_S - EPS, MAX_HOLD_S + EPS)
    kept = spans[keep].reset_index(drop=True)
    counts = {"hold_spans": int((kept["label"] == "hold").sum()), "eot_spans": int((kept["label"] == "eot").sum())}
    rows = []
    for name, scored in scores.items():
        table = sweep(kept, [s for s, k in zip(scored, keep) if k])
        rows.append({"protocol": "eot-bench", "policy": f"{name} x action delay x timeout", **counts,
                     **operating_points(table)})
    delays = np.unique(np.concatenate([ACTION_DELAYS, TIMEOUTS]))
    rows.append({"protocol": "eot-bench", "policy": "vad (silence timer)", **counts,
                 **operating_points(vad_sweep(kept, delays))})
    return rows


def eotbench_cli(args) -> int:
    """`dsm-lab turns DIR --protocol eot-bench [--json]`: a folder in eot-bench's layout or of synth items."""
    import json

    from .checkpoint import load

    folder = Path(args.dir)
    turns = load_eotbench(folder, args.limit) if any(folder.rglob("*.parquet")) else synth_turns(folder, args.limit)
    model = load(args.model)
    spans, scores = score_turns(model, turns, progress=not args.json)
    for row in protocol_rows(spans, scores):
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{k}={v}" for k, v in row.items() if not k.endswith("_params") and k != "protocol"))
    return 0
