"""The whole latency budget of one word: from the moment it starts in the audio to the moment it is delivered.

A word that starts at `start_s`, in frame f = floor(start_s x 12.5), has its EPAD at step f + D - 1 (later if
the word before it still held the step: `pushed`), its n pieces after it, and is final only when the next
token is written and is not one of its pieces. With the "training" alignment (Kyutai's training and server),
step t runs at the end of frame t and sees frame t - 1. So the word is delivered at the end of frame
f + D + n + pushed, plus the compute of that step:

    frame quantum        (f + 1) x 80 ms - start_s     the rest of the frame the word starts in
    lookahead            (D - 1) x 80 ms               the frames after that one, so that the first piece
                                                       is written having heard D frames from the word's
    alignment            80 ms ("training"), 0 ("scripts")   the server sees a frame one step after it arrived
    collision            pushed x 80 ms                 the word before still held the step
    pieces               (n - 1) x 80 ms                one step per piece after the first
    completion           80 ms                          the next token says the word is over
    compute              the completing step's compute

Its sum, less compute, is exactly when lab.train's target stream completes the word (tests/test_latency_budget.py
checks it against lab.train.text_targets). From the word's *end*, the wait is that sum minus the word's
duration. For the last word of a turn, `flushed_budget` is the alternative: at the end-of-turn decision the
flush steps D + 1 frames of silence at once, so the word comes (D + 1) x compute after the decision.
"""

from __future__ import annotations

import math

import pandas as pd

from .config import FRAME_RATE

FRAME_MS = 1000 / FRAME_RATE


def word_budget(start_s: float, pieces: int, delay_frames: int, step_ms: float = 0.0,
                alignment: str = "training", pushed: int = 0) -> pd.DataFrame:
    """One row per component (component, ms, why), in the order they add up; see the module docstring."""
    if alignment not in ("training", "scripts"):
        raise ValueError(f"alignment must be 'training' or 'scripts', got {alignment!r}")
    if pieces < 1 or delay_frames < 1:
        raise ValueError("a word has at least one piece, and the delay is at least one frame")
    f = math.floor(round(start_s * FRAME_RATE, 6))
    rows = [
        ("frame quantum", (f + 1) * FRAME_MS - start_s * 1000, "the rest of the 80 ms frame the word starts in"),
        ("lookahead", (delay_frames - 1) * FRAME_MS, f"{delay_frames} frames heard from the word's first"),
        ("alignment", FRAME_MS if alignment == "training" else 0.0,
         "the server sees a frame one step after it arrives" if alignment == "training" else "scripts: none"),
        ("collision", pushed * FRAME_MS, f"pushed {pushed} step(s) by the word before"),
        ("pieces", (pieces - 1) * FRAME_MS, f"{pieces} piece(s), one step each"),
        ("completion", FRAME_MS, "the next token says the word is over"),
        ("compute", float(step_ms), "the completing step's compute"),
    ]
    return pd.DataFrame(rows, columns=["component", "ms", "why"])


def delivered_s(budget: pd.DataFrame, start_s: float) -> float:
    """When the word is delivered, in stream time (s): its start plus every component."""
    return start_s + budget.ms.sum() / 1000


def flushed_budget(delay_frames: int, step_ms: float) -> pd.DataFrame:
    """The last word of a turn, flushed at the decision: D + 1 frames of silence stepped at once."""
    return pd.DataFrame([("flush", (delay_frames + 1) * step_ms,
                          f"{delay_frames + 1} silent frames stepped at once instead of waited for")],
                        columns=["component", "ms", "why"])


def budget_for(model, transcript, reference: list[dict], word: int, step_ms: float) -> tuple[pd.DataFrame, dict]:
    """The budget of reference word `word` of a clip the model transcribed: its piece count from the
    model's tokenizer, its collision from the trainer's target stream, `step_ms` for one step's compute
    (measure it streaming: lab.latency). Returns the budget and {text, start_s, end_s, rule_s: delivery in
    stream time by the rule above, model_s: when the model's transcript delivered it}."""
    from .lessons import target_table, writable
    from .metrics import match_words

    tok = model.tokenizer
    words = [(writable(tok, w.get("written", w["text"]), w["text"]), w["start"], w["end"]) for w in reference]
    n = len(transcript.steps) + model.cfg.delay_frames + 8
    table = target_table(words, model.tokenizer, model.cfg.delay_frames, n)
    ref, (text, _, _) = reference[word], words[word]
    rows = table[(table.word == text) & (table.kind == "EPAD")]  # a repeated word: its first EPAD at or after
    rows = rows[rows.spoken_frame == int(ref["start"] * FRAME_RATE)]
    pushed = int(rows.pushed_by.iloc[0]) if len(rows) else 0
    budget = word_budget(ref["start"], len(tok.encode_word(text)), model.cfg.delay_frames, step_ms,
                         model.alignment, pushed)
    pairs = dict(match_words([w["text"] for w in reference], [w.text for w in transcript.words]))
    emitted = transcript.words[pairs[word]].emitted_s if word in pairs else float("nan")
    stream = budget[budget.component != "compute"]
    # The model's own emission, in stream time, next to the trained rule's: equal when it writes the word
    # where its training put it (a frame apart when it hesitates).
    return budget, {"text": text, "start_s": ref["start"], "end_s": ref["end"],
                    "rule_s": round(float(delivered_s(stream, ref["start"])), 4), "model_s": emitted}
