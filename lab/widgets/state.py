"""What a live session has seen, kept apart from any widget so that it can be tested without one.

`LiveState.apply(events)` takes a streamer's events (Step, Word, EndOfTurn) and keeps the words, the
end-of-turn probabilities of every head, the policy's decisions and the flushes; the widgets only render
it (`transcript_html`, `flush_html`, `meter_payload`) and the notebooks read it as tables.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field

import pandas as pd

from ..config import FRAME_RATE
from ..events import EndOfTurn, Step, Word, WordEnd, with_word_ends


@dataclass(frozen=True)
class FlushRecord:
    """One flush: the decision that called it, how long `streamer.flush()` took and what it brought out."""

    decision_s: float  # stream time of the end-of-turn decision
    wall_ms: float  # measured time of streamer.flush(): the flush latency
    frames: int  # silence frames it stepped (delay_frames + 1)
    words: tuple[str, ...]  # the words that only came out thanks to it

    @property
    def realtime_ms(self) -> float:
        """What waiting for those frames in real time would have cost instead."""
        return self.frames * 1000 / FRAME_RATE


@dataclass
class LiveState:
    horizons: tuple[float, ...]
    delay_frames: int
    policy_horizon_s: float = 2.0
    threshold: float = 0.5
    words: list[Word] = field(default_factory=list)
    flushed: set[int] = field(default_factory=set)  # indices into words that a flush brought out
    times: list[float] = field(default_factory=list)  # per step: stream time (s)
    probs: list[list[float]] = field(default_factory=list)  # per step: one probability per head
    compute_ms: list[float] = field(default_factory=list)
    decisions: list[EndOfTurn] = field(default_factory=list)
    flushes: list[FlushRecord] = field(default_factory=list)
    error: str | None = None
    finished: bool = False
    words_since_flush: int = 0

    def __post_init__(self):
        self.lock = threading.Lock()  # the model thread writes while the kernel thread reads tables

    @property
    def policy_index(self) -> int:
        return self.horizons.index(self.policy_horizon_s) if self.policy_horizon_s in self.horizons else 0

    @property
    def now_s(self) -> float:
        return self.times[-1] if self.times else 0.0

    def apply(self, events: list, flushing: bool = False) -> list[EndOfTurn]:
        """Take one feed's (or one flush's) events; return the decisions that call for a flush.

        A decision calls for a flush when words came out since the last flush: a second decision in the
        same silence has nothing left to drain. Decisions made while flushing never call for another.
        """
        calls = []
        with self.lock:
            for e in events:
                if isinstance(e, Step):
                    self.times.append(e.time_s)
                    self.probs.append([e.p_eot.get(h, float("nan")) for h in self.horizons])
                    self.compute_ms.append(e.compute_ms)
                elif isinstance(e, Word):
                    if flushing:
                        self.flushed.add(len(self.words))
                    self.words.append(e)
                    self.words_since_flush += 1
                elif isinstance(e, WordEnd):  # an earlier word's end, given by the next EPAD
                    self.words = with_word_ends([*self.words, e])
                elif isinstance(e, EndOfTurn):
                    self.decisions.append(e)
                    if not flushing and self.words_since_flush:
                        calls.append(e)
        return calls

    def add_flush(self, decision_s: float, wall_ms: float, frames: int, events: list):
        with self.lock:
            words = tuple(e.text for e in events if isinstance(e, Word))
            self.flushes.append(FlushRecord(decision_s, wall_ms, frames, words))
            self.words_since_flush = 0

    # ------------------------------------------------------------------------------------------ views
    def transcript_html(self, max_words: int = 300) -> str:
        """The words as they came out, each with its spoken time (and its emission time on hover);
        a mark at each flushed end of turn."""
        with self.lock:
            words, flushed, flushes = list(self.words), set(self.flushed), list(self.flushes)
        start = max(0, len(words) - max_words)
        first_shown = words[start].emitted_s if start else float("-inf")
        parts, ends = [], sorted(f.decision_s for f in flushes if f.decision_s >= first_shown)
        for i, w in enumerate(words[start:], start):
            while ends and ends[0] <= w.emitted_s and i not in flushed:
                parts.append(_turn_mark(ends.pop(0)))
            cls = "dsm-word dsm-flushed" if i in flushed else "dsm-word"
            end = "?" if w.end_s is None else f"{w.end_s:.2f}"  # known at the next EPAD
            title = f"spoken {w.start_s:.2f}-{end} s, emitted at {w.emitted_s:.2f} s"
            # The space before the time keeps the word a word in the page's text (copy, search, tests).
            parts.append(f'<span class="{cls}" title="{title}">{html.escape(w.text)}'
                         f'<sub style="color:#888;font-size:0.7em"> {w.start_s:.2f}</sub></span>')
        parts += [_turn_mark(t) for t in ends]
        body = " ".join(parts) if parts else '<span style="color:#888">(no words yet)</span>'
        return f'<div class="dsm-transcript-text" style="line-height:1.8">{body}</div>'

    def flush_html(self) -> str:
        """The flush indicator: the last flush's measured latency against the real-time wait it saved."""
        with self.lock:
            flushes = list(self.flushes)
        if not flushes:
            return (f'<span class="dsm-flush">flush: none yet (on an end of turn, {self.delay_frames + 1} '
                    f'frames of silence are stepped at once instead of waiting '
                    f'{(self.delay_frames + 1) * 1000 / FRAME_RATE:.0f} ms)</span>')
        f = flushes[-1]
        mean = sum(x.wall_ms for x in flushes) / len(flushes)
        return (f'<span class="dsm-flush"><b>flush</b> at {f.decision_s:.2f} s: <b>{f.wall_ms:.1f} ms</b> for '
                f'{f.frames} frames (real time: {f.realtime_ms:.0f} ms) · words out: '
                f'{html.escape(" ".join(f.words)) or "none"} · {len(flushes)} flushes, mean {mean:.1f} ms</span>')

    def meter_payload(self, window_s: float = 10.0) -> dict:
        """The last `window_s` seconds of every head, for the meter widget (small: a few hundred points)."""
        with self.lock:
            n = len(self.times)
            first = n
            while first > 0 and self.times[first - 1] >= self.now_s - window_s:
                first -= 1
            times = self.times[first:]
            probs = [[p[h] for p in self.probs[first:]] for h in range(len(self.horizons))]
            decisions = [d.time_s for d in self.decisions if d.time_s >= self.now_s - window_s]
        return {"times": times, "probs": probs, "decisions": decisions, "now_s": self.now_s,
                "window_s": window_s, "threshold": self.threshold, "policy_index": self.policy_index,
                "horizons": list(self.horizons)}

    # ----------------------------------------------------------------------------------------- tables
    def words_frame(self) -> pd.DataFrame:
        """One row a word: text, start_s, end_s (NaN until the next EPAD gives it), emitted_s, how long after
        its start and its end it came out, whether a flush delivered it."""
        nan = float("nan")
        with self.lock:
            rows = [{"word": w.text, "start_s": w.start_s, "end_s": nan if w.end_s is None else w.end_s,
                     "emitted_s": w.emitted_s, "emitted_after_start_s": round(w.emitted_s - w.start_s, 3),
                     "emitted_after_end_s": nan if w.end_s is None else round(w.emitted_s - w.end_s, 3),
                     "by_flush": i in self.flushed}
                    for i, w in enumerate(self.words)]
        return pd.DataFrame(rows, columns=["word", "start_s", "end_s", "emitted_s", "emitted_after_start_s",
                                           "emitted_after_end_s", "by_flush"])

    def steps_frame(self) -> pd.DataFrame:
        """One row a step: time_s, p_eot_{h}s for every head, compute_ms."""
        from ..events import eot_column

        with self.lock:
            data = {"time_s": list(self.times)}
            for k, h in enumerate(self.horizons):
                data[eot_column(h)] = [p[k] for p in self.probs]
            data["compute_ms"] = list(self.compute_ms)
        return pd.DataFrame(data)

    def flushes_frame(self) -> pd.DataFrame:
        with self.lock:
            rows = [{"decision_s": f.decision_s, "flush_ms": round(f.wall_ms, 2), "frames": f.frames,
                     "realtime_wait_ms": f.realtime_ms, "words": " ".join(f.words)} for f in self.flushes]
        return pd.DataFrame(rows, columns=["decision_s", "flush_ms", "frames", "realtime_wait_ms", "words"])


def _turn_mark(time_s: float) -> str:
    return f'<span class="dsm-eot" style="color:#b05000">⏎ <small>end of turn {time_s:.2f} s</small></span><br>'
