"""Latency lab: where the milliseconds of a streaming transcription go, and what flushing buys.

A file is replayed as if it arrived in real time, chunk by chunk, through one `model.stream()`. Nothing
sleeps: each `feed()` runs as fast as it can and its wall time is measured; a simulated clock then places
every call on the timeline of a live server, where a call cannot start before its chunk has arrived nor
before the previous call has ended (`simulate_clock`). Events are delivered when their call ends. The
same measured run read with every arrival at 0 is the offline view (the whole file on disk).

    r = replay(model, audio, 24_000)              # Replay: calls, steps, words, end_of_turns (DataFrames)
    r.rtf, r.lag_s                                # real-time factor; how far the server fell behind
    lat = word_latencies(r, meta["words"])        # per word: emitted (stream) and delivered (wall) latency
    turns = flush_turns(model, audio, 24_000, meta["turns"])   # per turn: decision -> last word, 3 ways

Flush variants, after an end-of-turn decision (lab.metrics.flush_latency: decision -> final word):
- "none":   keep streaming in real time; the last words come out D frames (D x 80 ms) later;
- "flush":  `Streamer.flush()`: complete the partial frame with silence, step D + 1 silence frames at once
            and close the word being assembled; floor (D + 1) x step time;
- "unmute": what Kyutai's Unmute does: push ceil(delay / 0.08) + 1 frames of zeros at once through
            `feed()`; the last word only comes out when the model writes the token after it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics
from .config import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from .events import EndOfTurn, Step, Word

FRAME_S = 1 / FRAME_RATE  # 0.08 s
VARIANTS = ("none", "flush", "unmute")


def simulate_clock(arrivals_s, compute_s) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time of each call of a serial server: call k starts when its input has arrived and
    call k - 1 has ended, and runs for its measured compute time. Arrivals must not decrease."""
    arrivals, compute = np.asarray(arrivals_s, dtype=float), np.asarray(compute_s, dtype=float)
    if arrivals.shape != compute.shape:
        raise ValueError(f"{len(arrivals)} arrivals but {len(compute)} compute times")
    if np.any(np.diff(arrivals) < 0) or np.any(compute < 0):
        raise ValueError("arrivals must not decrease and compute times must be >= 0")
    starts, ends = np.empty_like(arrivals), np.empty_like(arrivals)
    free_at = -math.inf
    for k, (a, c) in enumerate(zip(arrivals, compute)):
        starts[k] = max(a, free_at)
        ends[k] = free_at = starts[k] + c
    return starts, ends


@dataclass
class Replay:
    """One measured run. `calls`: one row per feed/flush call (kind, arrival_s, compute_s, start_s, end_s,
    n_steps); `steps`, `words`, `end_of_turns`: the events, each with `delivered_s`, the wall time of the
    simulated clock at which its call returned."""

    calls: pd.DataFrame
    steps: pd.DataFrame
    words: pd.DataFrame
    end_of_turns: pd.DataFrame
    audio_s: float
    mode: str
    delay_frames: int

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of audio processed per second of compute (> 1: faster than real time)."""
        return self.audio_s / float(self.calls.compute_s.sum())

    @property
    def lag_s(self) -> float:
        """Most a call ended after its audio had arrived: what a listener waits beyond the audio itself."""
        return float((self.calls.end_s - self.calls.arrival_s).max())

    def word_objects(self, delivered: bool = True) -> list[Word]:
        """The words as lab.Word; with `delivered`, emitted_s is the wall time they reached the caller."""
        return [Word(r.text, r.start_s, r.end_s, r.delivered_s if delivered else r.emitted_s)
                for r in self.words.itertuples()]

    def retime(self, mode: str) -> Replay:
        """The same measured run seen in another mode ("realtime" or "offline")."""
        _check_mode(mode)
        calls = self.calls.copy()
        calls["arrival_s"] = calls.audio_end_s if mode == "realtime" else 0.0
        calls["start_s"], calls["end_s"] = simulate_clock(calls.arrival_s, calls.compute_s)
        end = dict(zip(calls.call, calls.end_s))
        frames = [df.assign(delivered_s=df.call.map(end).astype(float))
                  for df in (self.steps, self.words, self.end_of_turns)]
        return Replay(calls, *frames, self.audio_s, mode, self.delay_frames)


def _check_mode(mode: str) -> None:
    if mode not in ("realtime", "offline"):
        raise ValueError(f"mode must be 'realtime' or 'offline', not {mode!r}")


def _zeros(frames: int) -> np.ndarray:
    return np.zeros(frames * FRAME_SIZE, dtype=np.float32)


def unmute_frames(model) -> int:
    """Frames of zeros Kyutai's Unmute pushes on a pause: ceil(delay / 0.08) + 1 (delay in seconds)."""
    delay_s = model.cfg.delay_s
    return math.ceil(round(delay_s / FRAME_S, 6)) + 1  # round: 0.48 / 0.08 is 5.999... in floating point


def replay(model, audio: np.ndarray, sample_rate: int, chunk_s: float = FRAME_S, mode: str = "realtime",
           stop: str | float | None = None, flush: str = "none", stream=None, eot_after_s: float = 0.0) -> Replay:
    """Feed `audio` chunk by chunk through one stream, timing each call; see the module docstring.

    stop: None (the whole file), a time in seconds (feed the chunks that have arrived by then: an outside
    end-of-turn decision at that moment), or "eot" (stop after the call that returned the stream's own
    EndOfTurn, the first at or after stream time `eot_after_s`). flush: what to do at the stop: "none",
    "flush" (Streamer.flush) or "unmute" (see above).
    """
    _check_mode(mode)
    if flush not in VARIANTS:
        raise ValueError(f"flush must be one of {VARIANTS}, not {flush!r}")
    s = stream if stream is not None else model.stream()
    n, step = len(audio), max(1, round(chunk_s * sample_rate))
    rows, events = [], []

    def call(kind, audio_end_s, fn):
        t0 = time.perf_counter()
        evs = fn()
        rows.append({"call": len(rows), "kind": kind, "audio_end_s": audio_end_s,
                     "compute_s": time.perf_counter() - t0,
                     "n_steps": sum(isinstance(e, Step) for e in evs)})
        events.extend((len(rows) - 1, e) for e in evs)
        return evs

    decision_s = None
    for i in range(0, n, step):
        end_s = min(i + step, n) / sample_rate
        if isinstance(stop, (int, float)) and end_s > stop + 1e-9:
            decision_s = float(stop)
            break
        evs = call("feed", end_s, lambda i=i: s.feed(audio[i:i + step], sample_rate))
        if stop == "eot" and any(isinstance(e, EndOfTurn) and e.time_s >= eot_after_s - 1e-9 for e in evs):
            decision_s = end_s
            break
    if decision_s is None and isinstance(stop, (int, float)):
        decision_s = float(stop)  # a decision after the end of the audio
    if flush != "none" and decision_s is not None:
        fn = s.flush if flush == "flush" else (lambda: s.feed(_zeros(unmute_frames(model)), SAMPLE_RATE))
        call(flush, decision_s, fn)
    calls = pd.DataFrame(rows, columns=["call", "kind", "audio_end_s", "compute_s", "n_steps"])
    steps = pd.DataFrame([{"call": c, "step": e.step, "time_s": e.time_s, "token": e.token, "piece": e.piece,
                           "compute_ms": e.compute_ms} for c, e in events if isinstance(e, Step)],
                         columns=["call", "step", "time_s", "token", "piece", "compute_ms"])
    words = pd.DataFrame([{"call": c, "text": e.text, "start_s": e.start_s, "end_s": e.end_s,
                           "emitted_s": e.emitted_s} for c, e in events if isinstance(e, Word)],
                         columns=["call", "text", "start_s", "end_s", "emitted_s"])
    eots = pd.DataFrame([{"call": c, "time_s": e.time_s, "p": e.p, "policy": e.policy}
                         for c, e in events if isinstance(e, EndOfTurn)], columns=["call", "time_s", "p", "policy"])
    base = Replay(calls, steps, words, eots, n / sample_rate, mode, model.cfg.delay_frames)
    return base.retime(mode)


def word_latencies(r: Replay, ref_words: list[dict]) -> pd.DataFrame:
    """Per matched word: emission latency in stream time (`latency_stream_s`: the model's delay and frame
    quantisation only) and on the wall clock (`latency_s`: plus waiting and compute), both computed with
    lab.metrics.emission_latencies against the reference word ends."""
    hyp_wall, hyp_stream = r.word_objects(delivered=True), r.word_objects(delivered=False)
    pairs = metrics.match_words([w["text"] for w in ref_words], [w.text for w in hyp_wall])
    return pd.DataFrame({
        "text": [hyp_wall[j].text for _, j in pairs],
        "ref_end_s": [ref_words[i]["end"] for i, _ in pairs],
        "emitted_s": [hyp_stream[j].emitted_s for _, j in pairs],
        "delivered_s": [hyp_wall[j].emitted_s for _, j in pairs],
        "latency_stream_s": metrics.emission_latencies(ref_words, hyp_stream),
        "latency_s": metrics.emission_latencies(ref_words, hyp_wall),
    })


def _same_start(words: pd.DataFrame, start_s: float):
    """The word of a run that starts at the step `start_s` (None if that run has none)."""
    same = words[np.isclose(words.start_s, start_s)]
    return same.iloc[0] if len(same) else None


def _aligned_final(words: pd.DataFrame, ref_turn: list[dict], turn: dict):
    """The run's word aligned (lab.metrics.match_words) with the turn's last reference word, among the
    words the model dated to about that turn; None if the model did not get that word right."""
    near = words[(words.start_s >= turn["start"] - 0.5) & (words.start_s <= turn["end"] + 0.5)]
    pairs = metrics.match_words([w["text"] for w in ref_turn], list(near.text))
    hit = [j for i, j in pairs if i == len(ref_turn) - 1]
    return near.iloc[hit[0]] if hit else None


def flush_turns(model, audio: np.ndarray, sample_rate: int, turns: list[dict], decision: str = "reference",
                decision_delay_s: float = 0.0, chunk_s: float = FRAME_S, variants=VARIANTS,
                full: Replay | None = None, ref_words: list[dict] | None = None) -> pd.DataFrame:
    """Per turn and flush variant: end-of-turn decision -> the turn's final word delivered (wall clock).

    decision "reference": an outside decision at the reference end of the turn + `decision_delay_s` (a
    perfect voice-activity detector, push-to-talk); "model": the stream's first EndOfTurn at or after the
    reference end (turns it never detects are left out). The turn's final word: with `ref_words`, in each
    run, the word aligned with the turn's last reference word (NaN where the model got it wrong); without,
    the last word out of the "flush" run (which drains everything), and in the other runs the word that
    starts at the same step. `full`: the no-flush replay of the whole file, if already made. `wait_s`: how
    long the flush waited for the server to finish its last call.
    """
    if decision not in ("reference", "model"):
        raise ValueError(f"decision must be 'reference' or 'model', not {decision!r}")
    if full is None:
        full = replay(model, audio, sample_rate, chunk_s)
    rows = []
    for k, turn in enumerate(turns):
        end = turn["end"] + decision_delay_s
        if decision == "reference":
            stop, none_decision = end, end
            if len(turns) > 1 and k + 1 < len(turns):  # only this turn's audio: cut before the next one
                audio_k = audio[: int(turns[k + 1]["start"] * sample_rate)]
            else:
                audio_k = audio
        else:
            # The first decision at or after the end of the turn (lab.metrics.judge_turn's detection; early
            # cuts, before the end, are the turn lab's business: the turn's last word is not spoken yet).
            eot = full.end_of_turns[full.end_of_turns.time_s >= turn["end"] - 1e-9]
            if eot.empty:
                continue  # the model never decided: no flush to measure
            stop, none_decision, audio_k = "eot", float(eot.delivered_s.iloc[0]), audio
        runs = {v: replay(model, audio_k, sample_rate, chunk_s, stop=stop, flush=v, eot_after_s=turn["end"])
                for v in variants if v != "none"}
        runs["none"] = full
        ref_turn = [w for w in ref_words or [] if turn["start"] - 1e-6 <= w["start"] < turn["end"]]
        if ref_turn:
            finals = {v: _aligned_final(runs[v].words, ref_turn, turn) for v in variants}
        else:
            drained = runs["flush" if "flush" in runs else "none"].words
            target = drained.iloc[-1] if len(drained) else None
            finals = {v: None if target is None else _same_start(runs[v].words, float(target.start_s))
                      for v in variants}
        for v in variants:
            r = runs[v]
            last = r.calls.iloc[-1]
            if v != "none" and last.kind != v:
                continue  # the run never reached its decision (cannot happen with deterministic steps)
            decision_s = none_decision if v == "none" else float(last.arrival_s if decision == "reference"
                                                                  else r.calls.end_s.iloc[-2])
            w = finals[v]
            rows.append({
                "turn": k, "decision": decision, "variant": v, "decision_s": decision_s,
                "final_word": None if w is None else w.text,
                "final_word_start_s": np.nan if w is None else float(w.start_s),
                "delivered_s": np.nan if w is None else float(w.delivered_s),
                "latency_s": np.nan if w is None else metrics.flush_latency(decision_s, float(w.delivered_s)),
                "wait_s": float(last.start_s) - decision_s if v != "none" else np.nan,  # server still busy
                "flush_ms": 1e3 * float(last.compute_s) if v != "none" else np.nan,
                "flush_steps": int(last.n_steps) if v != "none" else 0,
            })
    return pd.DataFrame(rows)


def step_distribution(steps: pd.DataFrame) -> dict[str, float]:
    """Summary of the per-step compute time (ms): median, p90, p99, max, mean."""
    ms = steps.compute_ms.to_numpy(dtype=float)
    p = metrics.percentiles(ms, qs=(50, 90, 99))
    return {"steps": len(ms), "step_ms_p50": p["p50"], "step_ms_p90": p["p90"], "step_ms_p99": p["p99"],
            "step_ms_max": float(ms.max()) if len(ms) else float("nan"), "step_ms_mean": float(ms.mean())}


def run_items(model, paths, chunk_s: float = FRAME_S, decision_delay_s: float = 0.0, model_decision: bool = True,
              progress: bool = False) -> dict[str, pd.DataFrame]:
    """The latency lab over items (NAME.json paths, lab/items/format.py; words without times are left out of
    the per-word latencies): DataFrames `words` (per word), `turns` (per turn,
    decision and variant), `steps` (per step compute) and `items` (per item: real-time factor and lag)."""
    from .evaluate import each_item
    from .items import timed

    words, turns, steps, items = [], [], [], []
    for name, audio, meta in each_item(paths, progress=progress):
        rate = meta["sample_rate"]
        full = replay(model, audio, rate, chunk_s)
        ref_words = timed(meta["words"])
        words.append(word_latencies(full, ref_words).assign(item=name))
        kinds = ("reference", "model") if model_decision else ("reference",)
        for kind in kinds:
            turns.append(flush_turns(model, audio, rate, meta["turns"], kind, decision_delay_s, chunk_s,
                                     full=full, ref_words=ref_words).assign(item=name))
        steps.append(full.steps.assign(item=name))
        items.append({"item": name, "audio_s": full.audio_s, "rtf": full.rtf, "lag_s": full.lag_s,
                      "rtf_offline": full.retime("offline").rtf})
    return {"words": pd.concat(words, ignore_index=True), "turns": pd.concat(turns, ignore_index=True),
            "steps": pd.concat(steps, ignore_index=True), "items": pd.DataFrame(items)}


def summary(results: dict[str, pd.DataFrame], delay_frames: int) -> pd.DataFrame:
    """One row per (decision, variant): flush latency p50/p90 next to its floor, (D + 1) x median step, and
    the real-time wait D x 80 ms; plus per-word emission latency and the step distribution."""
    dist = step_distribution(results["steps"])
    floor_s = (delay_frames + 1) * dist["step_ms_p50"] / 1e3
    rows = []
    for (kind, variant), g in results["turns"].groupby(["decision", "variant"], sort=False):
        p = metrics.percentiles(g.latency_s)
        rows.append({"decision": kind, "variant": variant, "turns": len(g),
                     "final_word_out": int(g.latency_s.notna().sum()), "latency_p50_s": p["p50"],
                     "latency_p90_s": p["p90"], "flush_ms_p50": float(g.flush_ms.median()),
                     "floor_s": floor_s, "wait_s": delay_frames * FRAME_S})
    return pd.DataFrame(rows)
