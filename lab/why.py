""""Why did it cut me off?": the steps of notebook 05, from a failing probe to an ablation that changes the
decision. Each function is one step of the drill-down; lab.probes, lab.attribution, lab.patching and
lab.intervene do the work.

    case = first_early_cut(records, policy)              # a probe turn the policy cut, and when
    ended = ended_twin(case)                             # the same words, ended: the corrupted run
    step = most_different_step(model, case, ended)       # where the two runs disagree most in the pause
    found = decisive_ablation(model, case, policy, ranked_heads(patching))  # heads whose removal changes it
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .intervene import ablate
from .replay import stream_inputs


@dataclass
class Case:
    """One probe turn that a policy cut off: the record of lab.probes.run_probes and the early decision."""

    record: dict
    decision_s: float
    pause: dict  # the mid-turn pause the decision fell in

    @property
    def source(self):
        return self.record["audio"], 24_000

    def summary(self) -> str:
        r = self.record
        return (f"{r['text']!r} ({r['voice']}): cut at {self.decision_s:.2f} s, the pause ran "
                f"{self.pause['start']:.2f}-{self.pause['end']:.2f} s; the model wrote {r['transcript']!r}")


def first_early_cut(records: list[dict], policy) -> Case:
    """The first probe turn with a decision inside a mid-turn pause."""
    for r in records:
        for d in policy.decide(r["trace"]):
            pause = next((p for p in r["pauses"] if p["kind"] == "mid_turn" and p["start"] <= d < p["end"]), None)
            if pause is not None:
                return Case(r, d, pause)
    raise ValueError(f"{policy.name}: no early cut in these {len(records)} probe turns (nothing to explain)")


def plot_case(case: Case, policy, ax=None):
    """The drill-down figure of one case: every head over the turn, its words and pauses, the decisions."""
    from .plots import plot_eot_trace

    r = case.record
    return plot_eot_trace(trace=r["trace"], words=r["words"], pauses=r["pauses"],
                          decisions={policy.name: policy.decide(r["trace"])}, ax=ax)


def ended_twin(case: Case, sample_rate: int = 24_000) -> tuple[np.ndarray, int]:
    """The corrupted run for patching: the turn's audio up to its pause, where the speaker stops for good
    (the rest replaced by the recording's quiet tail, the same length): the same words, ended."""
    audio = case.record["audio"]
    cut = int(round(case.pause["start"] * sample_rate))
    quiet = audio[-(len(audio) - cut):] if len(audio) - cut <= cut else np.zeros(len(audio) - cut, audio.dtype)
    return np.concatenate([audio[:cut], quiet]), sample_rate


def most_different_step(model, clean, corrupted, horizon_s: float = 2.0, after_s: float = 0.0,
                        before_s: float = float("inf")):
    """Inputs of both runs (lab.replay) and the step (in [after_s, before_s) when there is one) where their
    `horizon_s` probabilities differ most: the decision the patching explains."""
    a, b = stream_inputs(model, clean), stream_inputs(model, corrupted)
    n = min(len(a), len(b))
    col = f"p_eot_{horizon_s:g}s"
    gap = np.abs(a.steps[col].to_numpy()[:n] - b.steps[col].to_numpy()[:n])
    times = a.times_s[:n]
    gap[(times < after_s) | (times >= before_s)] = -1
    return a, b, int(np.argmax(gap))


def ranked_heads(patching) -> list[tuple[int, int]]:
    """(layer, head) by the largest |effect| of patching that head's output at any step (needs heads=True)."""
    f = patching.frame[patching.frame["component"].str.startswith("head ")]
    if f.empty:
        raise ValueError("ranked_heads: run patch_eot(..., heads=True) to patch single heads")
    f = f.assign(head=f["component"].str[5:].astype(int), size=f["effect"].abs())
    best = f.groupby(["layer", "head"])["size"].max().sort_values(ascending=False)
    return [(int(layer), int(head)) for layer, head in best.index]


def decisive_ablation(model, case: Case, policy, heads: list[tuple[int, int]]) -> dict:
    """Zero-ablate the first 1, 2, 4, 8, ... of `heads` (then all of them) until the policy's decisions inside
    the case's pause change (the early cut goes away or moves). Returns the heads ablated, the decisions
    before and after, the trace and the transcript with the ablation (trace None if nothing changed it)."""
    from .trace import Trace

    before = policy.decide(case.record["trace"])
    audio = case.record["audio"]
    sizes = sorted({*(2**i for i in range(len(heads).bit_length()) if 2**i < len(heads)), len(heads)})
    for k in sizes:
        with ablate(model, heads=heads[:k]):
            t = model.transcribe((audio, 24_000))
        trace = Trace.from_steps(t.steps, audio, 24_000, case.record["name"])
        after = policy.decide(trace)
        if _in_pause(after, case) != _in_pause(before, case):  # the early cut went away or moved
            return {"heads": heads[:k], "before": before, "after": after, "trace": trace, "transcript": t.text}
    return {"heads": heads, "before": before, "after": before, "trace": None, "transcript": None}


def _in_pause(decisions, case: Case) -> list[float]:
    return [d for d in decisions if case.pause["start"] <= d < case.pause["end"]]


def decisions_table(found: dict, case: Case) -> pd.DataFrame:
    """The decisions with and without the ablation, each placed in the turn (inside the pause or after it)."""
    rows = []
    for which in ("before", "after"):
        for d in found[which]:
            where = "in the mid-turn pause" if case.pause["start"] <= d < case.pause["end"] else (
                "after the turn" if d >= case.record["turns"][0]["end"] else "inside speech")
            rows.append({"model": "as trained" if which == "before" else f"heads {found['heads']} ablated",
                         "decision_s": round(d, 3), "where": where})
    return pd.DataFrame(rows)
