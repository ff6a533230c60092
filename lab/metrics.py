"""The measures of dsm-lab, defined once and used everywhere (evaluation, turn lab, latency lab, notebooks).

- WER: word error rate against reference words (jiwer), after lower-casing and stripping punctuation.
- Word matching (which hypothesis word is which reference word, for latencies and timestamps): the same
  jiwer alignment, so a word counted correct by the WER is the word whose latency is measured.
- Emission latency of a word: the stream time at which it was emitted minus the reference end of the word.
- End of turn, per turn: an *early cut* is a decision before the reference end of the turn's last word
  (inside a mid-turn pause or inside speech); the *detection latency* is the first decision at or after that
  end, minus it; a *miss* is a turn with no decision at all after its end (before the next turn starts, or
  before the audio ends). Decisions before the turn's first word are nobody's: a voice agent does not answer
  a silence. Aggregates: early-cut rate per turn, latency p50/p90 over the turns neither cut nor missed,
  miss rate.
- Flush latency: time from the end-of-turn decision to the turn's final word being emitted.
- Question marks: F1 of the words written with a final "?", over the jiwer alignment (a "?" on a word the
  model got wrong counts as a miss and a false alarm). Capitals: the share of matched words written with the
  reference's case. WER ignores both; these say whether the model writes as Kyutai's STT writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def wer(references: list[str] | str, hypotheses: list[str] | str) -> float:
    """Corpus word error rate: total edits / total reference words."""
    import jiwer

    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if len(refs) != len(hyps):
        raise ValueError(f"wer: {len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps) if normalize(r)]
    if not pairs:
        raise ValueError("wer: every reference is empty")
    out = jiwer.process_words([r for r, _ in pairs], [h if h else "<empty>" for _, h in pairs])
    errors = out.substitutions + out.deletions + out.insertions
    return errors / sum(len(r.split()) for r, _ in pairs)


def _tokens(words: list[str], side: str) -> list[str]:
    """One alignment token per word: normalized, inner spaces joined ("e-mail" normalizes to "e mail"), and a
    word that is only punctuation made a token that matches nothing."""
    return [normalize(w).replace(" ", "_") or f"<{side}{i}>" for i, w in enumerate(words)]


def match_words(ref_words: list[str], hyp_words: list[str]) -> list[tuple[int, int]]:
    """(ref index, hyp index) of the words that jiwer's alignment, the one `wer` counts edits on, says are equal."""
    import jiwer

    if not ref_words or not hyp_words:
        return []
    out = jiwer.process_words(" ".join(_tokens(ref_words, "ref")), " ".join(_tokens(hyp_words, "hyp")))
    return [(c.ref_start_idx + k, c.hyp_start_idx + k) for c in out.alignments[0] if c.type == "equal"
            for k in range(c.ref_end_idx - c.ref_start_idx)]


def punctuation_counts(ref_written: list[str], hyp_words: list[str]) -> dict[str, int]:
    """Counts for question-mark F1 and capitalisation over one item (sum them over a test set)."""
    pairs = match_words(ref_written, hyp_words)
    ref_q = {i for i, w in enumerate(ref_written) if w.endswith("?")}
    hyp_q = {j for j, w in enumerate(hyp_words) if w.endswith("?")}
    tp = sum(1 for i, j in pairs if i in ref_q and j in hyp_q)
    same_case = sum(1 for i, j in pairs if ref_written[i].strip(".?,!") == hyp_words[j].strip(".?,!"))
    return {"q_tp": tp, "q_fp": len(hyp_q) - tp, "q_fn": len(ref_q) - tp, "matched": len(pairs),
            "same_case": same_case}


def sentence_marks(words: list[str]) -> list[str]:
    """The sentence types of a written transcript, in order: "?" or "." per sentence end (a transcript that
    stops without a mark counts nothing for its last sentence)."""
    return [w[-1] for w in words if w and w[-1] in ".?"]


def sentence_question_counts(ref_written: list[str], hyp_words: list[str]) -> dict[str, int]:
    """Question-mark counts per sentence rather than per word: the sequences of sentence-end marks of reference
    and hypothesis, aligned. A question whose last word was misheard or cut short still counts as found when
    the hypothesis ends that sentence with "?"; `punctuation_counts` counts it as a miss and a false alarm.
    The two together say whether a "?" error is about the question or about the words."""
    import jiwer

    ref, hyp = sentence_marks(ref_written), sentence_marks(hyp_words)
    ref_q, hyp_q = ref.count("?"), hyp.count("?")
    if not ref or not hyp:
        return {"sq_tp": 0, "sq_fp": hyp_q, "sq_fn": ref_q}
    names = {"?": "Q", ".": "S"}
    out = jiwer.process_words(" ".join(names[m] for m in ref), " ".join(names[m] for m in hyp))
    tp = sum(sum(1 for k in range(c.ref_end_idx - c.ref_start_idx) if ref[c.ref_start_idx + k] == "?")
             for c in out.alignments[0] if c.type == "equal")
    return {"sq_tp": tp, "sq_fp": hyp_q - tp, "sq_fn": ref_q - tp}


def question_f1(counts: dict[str, int]) -> float:
    """F1 of "?" from summed `punctuation_counts` (nan when there is no question on either side)."""
    if "sq_tp" in counts and "q_tp" not in counts:  # sentence_question_counts
        counts = {"q_tp": counts["sq_tp"], "q_fp": counts["sq_fp"], "q_fn": counts["sq_fn"]}
    tp, fp, fn = counts["q_tp"], counts["q_fp"], counts["q_fn"]
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")


def emission_latencies(ref: list[dict], hyp: list) -> np.ndarray:
    """Per matched word: emitted_s - reference end. ref: [{"text","start","end"}], hyp: [Word]."""
    pairs = match_words([w["text"] for w in ref], [w.text for w in hyp])
    return np.array([hyp[j].emitted_s - ref[i]["end"] for i, j in pairs])


def percentiles(values, qs=(50, 90)) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return {f"p{q}": float(np.percentile(values, q)) if len(values) else float("nan") for q in qs}


@dataclass(frozen=True)
class TurnOutcome:
    early_cut: bool  # a decision before the end of the turn's last word
    latency_s: float  # first decision at or after that end, minus it (nan if none)
    missed: bool  # no decision after the end
    first_early_s: float = float("nan")  # time of the first early decision


def judge_turn(decisions_s, turn_end_s: float, turn_start_s: float = 0.0,
               window_end_s: float = float("inf")) -> TurnOutcome:
    """Score one turn's end-of-turn decisions (stream times, seconds) against its reference end.

    Only decisions in [turn_start_s, window_end_s) belong to the turn; window_end_s is the next turn's start.
    """
    d = np.sort(np.asarray(list(decisions_s), dtype=float))
    d = d[(d >= turn_start_s) & (d < window_end_s)]
    early = d[d < turn_end_s]
    late = d[d >= turn_end_s]
    return TurnOutcome(early_cut=len(early) > 0, latency_s=float(late[0] - turn_end_s) if len(late) else float("nan"),
                       missed=len(late) == 0, first_early_s=float(early[0]) if len(early) else float("nan"))


def judge_item(decisions_s, turns: list[dict]) -> list[TurnOutcome]:
    """Score the decisions of one stream against each of its reference turns ({"start", "end"} in seconds):
    a decision belongs to the last turn that started at or before it."""
    starts = [t["start"] for t in turns] + [float("inf")]
    return [judge_turn(decisions_s, t["end"], t["start"], starts[i + 1]) for i, t in enumerate(turns)]


def locate(time_s: float, words: list[dict], pauses: list[dict]) -> dict:
    """Where a time falls in the reference: inside a word ("speech"), a listed pause ("mid_turn" or
    "end_of_turn", with its start and end), a short unlisted gap between words ("gap": e.g. between two
    sentences of a turn), or before the first word / after the last ("before_speech", "after_speech").

    Used to say which pause fooled a policy that cut a speaker off.
    """
    nan = float("nan")
    for p in pauses:
        if p["start"] <= time_s < p["end"]:
            return {"where": p["kind"], "start_s": p["start"], "end_s": p["end"]}
    if not words or time_s < words[0]["start"]:
        return {"where": "before_speech", "start_s": nan, "end_s": words[0]["start"] if words else nan}
    for i, w in enumerate(words):
        if w["start"] <= time_s < w["end"]:
            return {"where": "speech", "start_s": w["start"], "end_s": w["end"]}
        if i + 1 < len(words) and w["end"] <= time_s < words[i + 1]["start"]:
            return {"where": "gap", "start_s": w["end"], "end_s": words[i + 1]["start"]}
    return {"where": "after_speech", "start_s": words[-1]["end"], "end_s": nan}


def summarize_turns(outcomes: list[TurnOutcome]) -> dict[str, float]:
    """Early-cut rate per turn, latency p50/p90 (turns not cut early and detected), miss rate."""
    if not outcomes:
        raise ValueError("no turns to summarize")
    latencies = [o.latency_s for o in outcomes if not o.early_cut and not o.missed]
    p = percentiles(latencies)
    return {"turns": len(outcomes), "early_cut_rate": float(np.mean([o.early_cut for o in outcomes])),
            "latency_p50_s": p["p50"], "latency_p90_s": p["p90"],
            "miss_rate": float(np.mean([o.missed for o in outcomes]))}


def flush_latency(decision_s: float, last_word_emitted_s: float) -> float:
    """Time from the end-of-turn decision to the turn's final word (negative: the word came first)."""
    return last_word_emitted_s - decision_s
