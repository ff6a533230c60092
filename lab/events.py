"""What a stream says: one `Step` per 80 ms frame, a `Word` when a word is complete, a `WordEnd` when the text
stream says where that word ended (later: at the next EPAD), an `EndOfTurn` when the end-of-turn policy
decides the speaker has finished. A whole file gives a `Transcript`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd


@dataclass(frozen=True)
class Step:
    step: int  # index of the model step in its stream
    time_s: float  # stream time at which the step could run: the end of the newest audio frame it had
    token: int  # text token written
    piece: str  # its sentencepiece text ("" for PAD, "<epad>" for EPAD)
    p_eot: dict[float, float]  # horizon (s) -> probability that nobody speaks within it
    compute_ms: float  # wall time of the model step (for a batch: the whole batch's step)
    stream: int = 0


@dataclass(frozen=True)
class Word:
    """A complete word. Its times follow Kyutai's server (lab.tokenizer.WordAssembler): it starts at the EPAD
    before it and ends at the next EPAD, which has usually not come yet when the word is delivered: end_s is
    then None and a `WordEnd` follows. In a `Transcript` the ends are filled in; None means no EPAD ever came
    (the last word before the stream ended)."""

    text: str
    start_s: float  # the EPAD before it, dated (step + 1) / 12.5 - delay: when the word was spoken
    end_s: float | None  # the next EPAD, dated the same way; None while unknown
    emitted_s: float  # stream time at which the word was complete and delivered
    stream: int = 0


@dataclass(frozen=True)
class WordEnd:
    """The end of an earlier `Word` (same text, start_s and stream), known at the next EPAD (moshi-server's
    `EndWord` message)."""

    text: str
    start_s: float
    end_s: float
    emitted_s: float  # stream time of the EPAD's step
    stream: int = 0


def with_word_ends(events) -> list[Word]:
    """The `Word`s of an event list with each `WordEnd` applied to the word it ends."""
    words: list[Word] = []
    for e in events:
        if isinstance(e, Word):
            words.append(e)
        elif isinstance(e, WordEnd):
            for i in range(len(words) - 1, -1, -1):
                w = words[i]
                if (w.stream, w.text, w.start_s) == (e.stream, e.text, e.start_s) and w.end_s is None:
                    words[i] = replace(w, end_s=e.end_s)
                    break
    return words


@dataclass(frozen=True)
class EndOfTurn:
    time_s: float  # stream time of the decision
    p: float  # the probability that triggered it
    policy: str
    stream: int = 0


@dataclass
class Transcript:
    text: str
    words: list[Word]
    steps: pd.DataFrame  # step, time_s, token, piece, p_eot_{h}s..., compute_ms
    end_of_turns: list[EndOfTurn] = field(default_factory=list)

    def __repr__(self):
        return (f"Transcript({self.text!r}, {len(self.words)} words, {len(self.steps)} steps, "
                f"{len(self.end_of_turns)} end-of-turn events)")


def eot_column(horizon_s: float) -> str:
    """Column name of an end-of-turn horizon: 0.5 -> 'p_eot_0.5s', 2.0 -> 'p_eot_2s'."""
    return f"p_eot_{horizon_s:g}s"


def steps_frame(steps: list[Step], horizons: tuple[float, ...]) -> pd.DataFrame:
    rows = [{"step": s.step, "time_s": s.time_s, "token": s.token, "piece": s.piece,
             **{eot_column(h): s.p_eot.get(h, float("nan")) for h in horizons},
             "compute_ms": s.compute_ms} for s in steps]
    columns = ["step", "time_s", "token", "piece", *map(eot_column, horizons), "compute_ms"]
    return pd.DataFrame(rows, columns=columns)
