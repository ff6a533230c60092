"""WebVTT (webvtt-py) and SRT (pysrt) subtitles <-> items; both in the [formats] extra.

A cue is one of three things:
- a pause: its text "[hold]" or "[shift]" (the bracket subtitlers use for what is not speech);
- a word: one word of text, timed by the cue (word-level subtitles, as speech tools export them);
- a line of several words: a turn, its words without times of their own (in a file with such lines,
  every line of speech is a turn, a one-word line too).
The speaker is the cue's voice span (WebVTT ``<v Ann>``) or a "Ann: " prefix (SRT). Written files hold one
cue per timed word and per pause, so VTT -> item -> VTT keeps every word time and label.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..extras import require

PAUSE_CUE = re.compile(r"^\[(hold|shift)\]$")
SPEAKER_PREFIX = re.compile(r"^([^:\s][^:]{0,40}):\s+(.*)$")


def _seconds(stamp: str) -> float:
    """hh:mm:ss.mmm (or mm:ss.mmm; "," for SRT) -> seconds, to the millisecond."""
    parts = stamp.strip().replace(",", ".").split(":")
    value = 0.0
    for p in parts:
        value = value * 60 + float(p)
    return round(value, 3)


def _stamp(seconds: float, separator: str = ".") -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def labels_from_cues(cues: list[tuple[float, float, str, str | None]]) -> dict:
    """(start, end, text, speaker) cues -> words, pauses, and turns where a cue held several words."""
    words, pauses, turns = [], [], []
    # Line-level subtitles (some cue holds several words): every line of speech is a turn, one word or more.
    lines = any(len(text.split()) > 1 and not PAUSE_CUE.match(" ".join(text.split())) for _, _, text, _ in cues)
    for start, end, text, speaker in cues:
        text = " ".join(text.split())
        who = {"speaker": speaker} if speaker else {}
        pause = PAUSE_CUE.match(text)
        if pause:
            pauses.append({"start": start, "end": end, "label": pause.group(1)})
        elif len(text.split()) == 1:
            words.append({"text": text, "start": start, "end": end, **who})
            if lines:
                turns.append({"start": start, "end": end, **who})
        elif text:
            words += [{"text": w, **who} for w in text.split()]
            turns.append({"start": start, "end": end, **who})
    labels = {"words": words}
    if pauses:
        labels["pauses"] = pauses
    if turns:
        labels["turns"] = turns
    return labels


def cues_of(meta: dict) -> list[tuple[float, float, str, str | None]]:
    """An item's timed words and its pauses as cues, in time order (words without times cannot be cues)."""
    cues = [(w["start"], w["end"], w["text"], w.get("speaker")) for w in meta["words"] if "start" in w]
    cues += [(p["start"], p["end"], f"[{p['label']}]", None) for p in meta["pauses"]]
    return sorted(cues, key=lambda c: (c[0], c[1]))


def read_vtt(path) -> dict:
    webvtt = require("webvtt", "reading WebVTT files")
    try:
        captions = webvtt.read(str(path)).captions
    except Exception as e:  # webvtt-py's MalformedFileError and friends
        raise ValueError(f"{path}: not a WebVTT file webvtt-py can read ({e})") from e
    return labels_from_cues([(_seconds(c.start), _seconds(c.end), c.text, c.voice) for c in captions])


def write_vtt(meta: dict, path, duration_s: float | None = None) -> Path:
    webvtt = require("webvtt", "writing WebVTT files")
    vtt = webvtt.WebVTT()
    for start, end, text, speaker in cues_of(meta):
        vtt.captions.append(webvtt.Caption(_stamp(start), _stamp(end), f"<v {speaker}>{text}" if speaker else text))
    vtt.save(str(path))
    return Path(path)


def read_srt(path) -> dict:
    pysrt = require("pysrt", "reading SRT files")
    try:
        items = pysrt.open(str(path), error_handling=pysrt.ERROR_RAISE)
    except Exception as e:
        raise ValueError(f"{path}: not an SRT file pysrt can read ({e})") from e
    cues = []
    for item in items:
        text, speaker = item.text_without_tags.strip(), None
        prefix = SPEAKER_PREFIX.match(text)
        if prefix and not PAUSE_CUE.match(text):
            speaker, text = prefix.group(1), prefix.group(2)
        cues.append((item.start.ordinal / 1000, item.end.ordinal / 1000, text, speaker))
    return labels_from_cues(cues)


def write_srt(meta: dict, path, duration_s: float | None = None) -> Path:
    pysrt = require("pysrt", "writing SRT files")
    out = pysrt.SubRipFile()
    for i, (start, end, text, speaker) in enumerate(cues_of(meta), 1):
        out.append(pysrt.SubRipItem(i, pysrt.SubRipTime.from_ordinal(round(start * 1000)),
                                    pysrt.SubRipTime.from_ordinal(round(end * 1000)),
                                    f"{speaker}: {text}" if speaker else text))
    out.save(str(path), encoding="utf-8")
    return Path(path)
