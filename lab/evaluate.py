"""Evaluation of a model on a folder of synth items: WER, emission latency, end-of-turn measures.

Each item is streamed on its own tokens (no teacher forcing), followed by `tail_s` seconds of silence, as if
the speaker stayed quiet after the turn: the end-of-turn heads need that time to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics, turns
from .events import eot_column


@dataclass
class ItemResult:
    name: str
    reference: str
    hypothesis: str
    ref_words: list[dict]
    words: list  # lab.Word
    steps: pd.DataFrame
    turn_start_s: float
    turn_end_s: float
    vad_times_s: np.ndarray
    vad_speech: np.ndarray


def run_items(model, folder: str | Path, tail_s: float = 3.0, limit: int | None = None, progress=False):
    from .synth import load_item

    paths = sorted(Path(folder).glob("*.json"))[:limit]
    if not paths:
        raise ValueError(f"no items (*.json) in {folder}")
    results = []
    iterator = paths
    if progress:
        from tqdm import tqdm
        iterator = tqdm(paths, unit="item")
    for p in iterator:
        audio, meta = load_item(p)
        rate = meta["sample_rate"]
        padded = np.concatenate([audio, np.zeros(int(tail_s * rate), dtype=audio.dtype)])
        t = model.transcribe((padded, rate))
        words = meta["words"]
        vad_t, vad_s = turns.energy_vad(padded, rate)
        results.append(ItemResult(p.stem, " ".join(w["text"] for w in words), t.text, words, t.words, t.steps,
                                  words[0]["start"], words[-1]["end"], vad_t, vad_s))
    return results


def transcription_summary(results: list[ItemResult]) -> dict:
    lat = np.concatenate([metrics.emission_latencies(r.ref_words, r.words) for r in results])
    p = metrics.percentiles(lat)
    return {"items": len(results), "wer": metrics.wer([r.reference for r in results], [r.hypothesis for r in results]),
            "emission_latency_p50_s": p["p50"], "emission_latency_p90_s": p["p90"]}


def semantic_outcomes(results, horizon_s: float, threshold: float):
    col = eot_column(horizon_s)
    return [metrics.judge_turn(turns.threshold_decisions(r.steps["time_s"], r.steps[col], threshold, r.turn_start_s),
                               r.turn_end_s, r.turn_start_s) for r in results]


def silence_outcomes(results, min_silence_s: float):
    return [metrics.judge_turn(turns.silence_decisions(r.vad_times_s, r.vad_speech, min_silence_s, r.turn_start_s),
                               r.turn_end_s, r.turn_start_s) for r in results]


THRESHOLDS = tuple(np.round(np.arange(0.05, 1.0, 0.025), 3))
SILENCES_S = tuple(np.round(np.arange(0.1, 2.55, 0.05), 3))


def sweep_semantic(results, horizon_s: float, thresholds=THRESHOLDS) -> pd.DataFrame:
    rows = [{"policy": f"p_eot_{horizon_s:g}s > th", "horizon_s": horizon_s, "threshold": round(float(th), 3),
             **metrics.summarize_turns(semantic_outcomes(results, horizon_s, th))} for th in thresholds]
    return pd.DataFrame(rows)


def sweep_silence(results, durations=SILENCES_S) -> pd.DataFrame:
    rows = [{"policy": "silence >= s", "min_silence_s": round(float(s), 3),
             **metrics.summarize_turns(silence_outcomes(results, s))} for s in durations]
    return pd.DataFrame(rows)


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
