"""What a label file leaves out, derived from what it gives: pauses from the gaps between words, turns from
the pauses. A subtitle file or a word alignment has words and nothing else; an item needs all three."""

from __future__ import annotations

from .format import MIN_PAUSE_S, timed


def gaps(words: list[dict], duration_s: float) -> list[dict]:
    """Every silence of at least 100 ms between consecutive timed words (any speaker), and after the last."""
    spoken = sorted(timed(words), key=lambda w: (w["start"], w["end"]))
    out, reach = [], None
    for w in spoken:
        if reach is not None and w["start"] - reach >= MIN_PAUSE_S - 1e-9:
            out.append({"start": reach, "end": w["start"]})
        reach = w["end"] if reach is None else max(reach, w["end"])
    if reach is not None and duration_s - reach >= MIN_PAUSE_S - 1e-9:
        out.append({"start": reach, "end": duration_s})
    return out


def split_at_shifts(spans: list, shifts: list[float], times, tolerance_s: float) -> list[list]:
    """Consecutive `spans` (in time order; `times(span)` -> (start, end)) grouped into turns: a new group
    wherever a shift pause starts in the gap between one span's end and the next one's start."""
    groups, current = [], []
    for span in spans:
        start = times(span)[0]
        if current and any(times(current[-1])[1] - tolerance_s <= s < start for s in shifts):
            groups.append(current)
            current = []
        current.append(span)
    if current:
        groups.append(current)
    return groups


def turns_from_pauses(words: list[dict], pauses: list[dict]) -> list[dict]:
    """One turn from the first word after a "shift" pause (or the start) to the last word before the next."""
    spoken = sorted(timed(words), key=lambda w: w["start"])
    shifts = sorted(p["start"] for p in pauses if p.get("label") == "shift")
    turns = split_at_shifts(spoken, shifts, lambda w: (w["start"], w["end"]), tolerance_s=1e-9)
    out = []
    for t in turns:
        turn = {"start": t[0]["start"], "end": max(w["end"] for w in t)}
        speakers = {w.get("speaker") for w in t} - {None}
        if len(speakers) == 1:
            turn["speaker"] = speakers.pop()
        out.append(turn)
    return out


def complete(labels: dict, duration_s: float) -> dict:
    """`labels` (words, and turns and pauses where the source had them) with what is missing derived:
    without pauses, every gap between words becomes one, "shift" where it ends a turn (or the speaker changes,
    or it is the last), else "hold", each with a `reason`; without turns, turns between "shift" pauses."""
    words = labels.get("words", [])
    turns, pauses = labels.get("turns"), labels.get("pauses")
    if pauses is None:
        ends = [t["end"] for t in turns or []]
        spoken = sorted(timed(words), key=lambda w: w["start"])
        pauses = []
        for g in gaps(words, duration_s):
            before = [w for w in spoken if w["end"] <= g["start"] + 1e-9]
            after = [w for w in spoken if w["start"] >= g["end"] - 1e-9]
            changes = bool(before and after and before[-1].get("speaker") != after[0].get("speaker"))
            if not after:
                label, reason = "shift", "after the last word"
            elif turns is not None:
                label = "shift" if any(abs(e - g["start"]) < 1e-6 for e in ends) else "hold"
                reason = "from the turns"
            else:
                label, reason = ("shift", "the speaker changes") if changes else ("hold", "same speaker goes on")
            pauses.append({**g, "label": label, "reason": reason})
    if turns is None:
        turns = turns_from_pauses(words, pauses)
    return {**labels, "words": words, "turns": turns, "pauses": pauses}
