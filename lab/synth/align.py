"""Exact word timings from espeak's phoneme events, tightened with the audio's energy.

Why not just WORD events: espeak merges some word groups into one event ("in the", "on the"),
emits events that are not word starts, and fires them a little before the sound (median
13 ms, up to ~110 ms, because the event marks the start of the pause or closure before the
word). PHONEME events carry the ``text_position`` of the word event they belong to and the
sample where each phoneme starts, so we:

1. give every non-pause phoneme to the word whose characters contain its text position
   (a position in the space between words belongs to the next word);
2. split a merged group's phonemes between its words in proportion to their letters;
3. take each word's span from its first phoneme's start to the next phoneme event after
   its last one (pauses are phonemes too: ``_``, ``_:``), then
4. trim the span to where the audio is above an energy threshold (so a word starts at its
   burst, not at a stop's silent closure, and ends where its sound ends, not in a pause),
   letting the first and last word of the chunk grow into neighbouring silence when their
   sound runs past the phoneme event (release tails).

All positions are samples at the synthesis rate (22050 Hz).
"""

from __future__ import annotations

import bisect

import numpy as np

from .espeak import RawSynthesis

ENVELOPE_MS = 4.0  # RMS window: long enough to bridge zero crossings, short enough for ms timing
SILENCE_DB = 40.0  # below the chunk's loudest window by this much counts as silence
SILENCE_FLOOR = 12.0  # int16 RMS under which audio is silent whatever the chunk level
# How far the first/last word may grow past its phoneme events. Small on purpose: the voices
# with an echo (m2, f2..f5: a 10-15 % copy 120-140 ms later) ring on above the threshold,
# and that reverberation is not part of the word.
MAX_GROW_MS = 25.0


def word_char_spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """0-based [start, end) character span of each word in ``text`` (words appear in order)."""
    spans, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        spans.append((start, start + len(w)))
        pos = start + len(w)
    return spans


def envelope(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Centered moving RMS of ``pcm`` (same length)."""
    x = pcm.astype(np.float64)
    w = max(1, int(rate * ENVELOPE_MS / 1000))
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    idx = np.arange(len(x))
    lo = np.clip(idx - w // 2, 0, len(x))
    hi = np.clip(idx + (w - w // 2), 0, len(x))
    return np.sqrt((c[hi] - c[lo]) / np.maximum(hi - lo, 1))


def silence_threshold(env: np.ndarray) -> float:
    peak = float(env.max()) if len(env) else 0.0
    return max(peak * 10 ** (-SILENCE_DB / 20), SILENCE_FLOOR)


def _phoneme_words(raw: RawSynthesis, spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Per word, its phonemes as (start_sample, end_sample)."""
    events = sorted(raw.phonemes, key=lambda p: p.sample)
    ends = [e for _, e in spans]
    per_word: list[list[tuple[int, int]]] = [[] for _ in spans]
    last_word = 0
    for k, ph in enumerate(events):
        if ph.name.startswith("_"):  # pause pseudo-phoneme: only marks where the previous one ended
            continue
        stop = events[k + 1].sample if k + 1 < len(events) else raw.end_sample
        pos = ph.text_position - 1
        w = min(bisect.bisect_right(ends, pos), len(spans) - 1)
        w = max(w, last_word)  # phonemes come in text order; never step back a word
        last_word = w
        per_word[w].append((ph.sample, max(stop, ph.sample)))
    return per_word


Span = tuple[int, int]


def _split_groups(per_word: list[list[Span]], spans: list[Span]) -> list[Span]:
    """Raw (start, end) per word, dividing merged groups' phonemes among their words."""
    n = len(spans)
    owners = [i for i in range(n) if per_word[i]]
    if not owners:
        raise ValueError("espeak produced no phoneme events for this text")
    raw: list[tuple[int, int] | None] = [None] * n
    for gi, owner in enumerate(owners):
        # The group: words from this owner up to the next owner; words before the first owner join it.
        first = 0 if gi == 0 else owner
        last = owners[gi + 1] - 1 if gi + 1 < len(owners) else n - 1
        members = list(range(first, last + 1))
        phones = per_word[owner]
        if len(members) == 1:
            raw[owner] = (phones[0][0], phones[-1][1])
            continue
        letters = np.array([spans[i][1] - spans[i][0] for i in members], dtype=float)
        cuts = np.cumsum(letters)[:-1] / letters.sum()
        if len(phones) >= len(members):
            # Cut at phoneme boundaries, each word keeping at least one phoneme.
            idx = [int(round(c * len(phones))) for c in cuts]
            bounds = [0]
            for j, b in enumerate(idx):
                bounds.append(min(max(b, bounds[-1] + 1), len(phones) - (len(members) - 1 - j)))
            bounds.append(len(phones))
            for j, i in enumerate(members):
                part = phones[bounds[j]:bounds[j + 1]]
                raw[i] = (part[0][0], part[-1][1])
        else:  # fewer phonemes than words: share the group's time by letters
            t0, t1 = phones[0][0], phones[-1][1]
            edges = [t0] + [int(t0 + c * (t1 - t0)) for c in cuts] + [t1]
            for j, i in enumerate(members):
                raw[i] = (edges[j], edges[j + 1])
    return raw  # type: ignore[return-value]


def align_words(raw: RawSynthesis, text: str, words: list[str], rate: int) -> list[tuple[int, int]]:
    """Tight (start, end) sample span of each word of ``text`` in ``raw.pcm``; end is exclusive."""
    if not words:
        return []
    spans = word_char_spans(text, words)
    rough = _split_groups(_phoneme_words(raw, spans), spans)
    env = envelope(raw.pcm, rate)
    loud = env > silence_threshold(env)
    n_samples = len(raw.pcm)
    grow = int(rate * MAX_GROW_MS / 1000)
    out = []
    for i, (s, e) in enumerate(rough):
        s, e = min(max(s, 0), n_samples), min(max(e, 0), n_samples)
        idx = np.flatnonzero(loud[s:e])
        if len(idx):
            ts, te = s + int(idx[0]), s + int(idx[-1]) + 1
        else:  # a word with no loud sample in its span: keep the phoneme span as is
            ts, te = s, max(e, s + 1)
        if i == 0:  # sound may start before the first phoneme event: grow back into the silence
            limit = max(0, s - grow)
            while ts > limit and loud[ts - 1]:
                ts -= 1
        if i == len(rough) - 1:  # ... and ring on after the last one
            limit = min(n_samples, e + grow)
            while te < limit and loud[te]:
                te += 1
        out.append((ts, te))
    # Trimming only shrinks inner words, so they cannot overlap; keep a guard for odd events.
    for i in range(1, len(out)):
        if out[i][0] < out[i - 1][1]:
            mid = (out[i][0] + out[i - 1][1]) // 2
            out[i - 1] = (out[i - 1][0], max(mid, out[i - 1][0] + 1))
            out[i] = (max(mid, out[i - 1][1]), max(out[i][1], mid + 1))
    return out
