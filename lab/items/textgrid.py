"""Praat TextGrids <-> items (praatio, in the [formats] extra).

Tiers by name (any case): "words" (one interval a word; without it, the first interval tier), "turns"
(an interval a turn, its text the speaker), "pauses" (an interval a pause, its text "hold" or "shift").
Empty intervals are gaps. A TextGrid without a pauses or turns tier gets them derived (lab.items.derive).
Written TextGrids have the three tiers, so TextGrid -> item -> TextGrid keeps every time and label.
"""

from __future__ import annotations

from pathlib import Path

from ..extras import require


def _intervals(tier) -> list[tuple[float, float, str]]:
    return [(float(e.start), float(e.end), str(e.label).strip()) for e in tier.entries if str(e.label).strip()]


def read_textgrid(path) -> dict:
    """The labels of a TextGrid: words, and turns and pauses where it has those tiers."""
    textgrid = require("praatio.textgrid", "reading TextGrids")
    path = Path(path)
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    except Exception as e:  # praatio raises several kinds on a malformed file
        raise ValueError(f"{path}: not a TextGrid praatio can read ({e})") from e
    tiers = {name.lower(): tg.getTier(name) for name in tg.tierNames}
    interval_tiers = [t for t in tiers.values() if isinstance(t, textgrid.IntervalTier)]
    words_tier = tiers.get("words") or (interval_tiers[0] if interval_tiers else None)
    if words_tier is None:
        raise ValueError(f"{path}: no interval tier (words) in this TextGrid; it has {tg.tierNames}")
    labels = {"words": [{"text": text, "start": s, "end": e} for s, e, text in _intervals(words_tier)]}
    if "turns" in tiers:
        labels["turns"] = [{"start": s, "end": e, **({"speaker": text} if text != "turn" else {})}
                           for s, e, text in _intervals(tiers["turns"])]
    if "pauses" in tiers:
        pauses = []
        for s, e, text in _intervals(tiers["pauses"]):
            if text not in ("hold", "shift"):
                raise ValueError(f"{path}: tier pauses: interval {s:.3f}-{e:.3f} s says {text!r}, not hold or shift")
            pauses.append({"start": s, "end": e, "label": text})
        labels["pauses"] = pauses
    return labels


def write_textgrid(meta: dict, path, duration_s: float) -> Path:
    """An item's timed words, turns and pauses as a TextGrid of three interval tiers."""
    textgrid = require("praatio.textgrid", "writing TextGrids")
    from praatio.utilities.constants import Interval

    def tier(name, entries):
        return textgrid.IntervalTier(name, [Interval(s, e, text) for s, e, text in entries], 0.0, duration_s)

    tg = textgrid.Textgrid()
    tg.addTier(tier("words", [(w["start"], w["end"], w["text"]) for w in meta["words"] if "start" in w]))
    tg.addTier(tier("turns", [(t["start"], t["end"], t.get("speaker", "turn")) for t in meta["turns"]]))
    tg.addTier(tier("pauses", [(p["start"], p["end"], p["label"]) for p in meta["pauses"]]))
    path = Path(path)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")
    return path
