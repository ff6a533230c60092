"""Two plain-text label formats, read and written without a library: CTM word alignments (NIST's
``utterance channel start duration word [confidence]``, one word a line, as Kaldi and most aligners write
them) and Audacity's label tracks (``start<TAB>end<TAB>text``; "hold" and "shift" labels are pauses, every
other label a word)."""

from __future__ import annotations

from pathlib import Path


def _numbers(path: Path, line_no: int, fields: list[str], *names: str) -> list[float]:
    out = []
    for name, value in zip(names, fields):
        try:
            out.append(float(value))
        except ValueError:
            raise ValueError(f"{path}: line {line_no}: {name} {value!r} is not a number of seconds") from None
    return out


def read_ctm(path) -> dict:
    """Words of a CTM file; its channel becomes the speaker when the file has more than one channel."""
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or line.startswith(";;"):
            continue
        if len(fields) < 5:
            raise ValueError(f"{path}: line {n}: expected utterance channel start duration word, got {line!r}")
        start, duration = _numbers(path, n, fields[2:4], "start", "duration")
        rows.append((fields[1], round(start, 3), round(start + duration, 3), fields[4]))
    channels = sorted({r[0] for r in rows})
    words = [{"text": text, "start": s, "end": e, **({"speaker": ch} if len(channels) > 1 else {})}
             for ch, s, e, text in sorted(rows, key=lambda r: (r[1], r[0]))]
    return {"words": words, **({"speakers": channels} if len(channels) > 1 else {})}


def write_ctm(meta: dict, path, duration_s: float | None = None) -> Path:
    """An item's timed words as CTM: the utterance is the item's name, the channel its speaker's number."""
    path = Path(path)
    speakers = meta.get("speakers") or sorted({w.get("speaker") for w in meta["words"]} - {None})
    name = Path(meta.get("audio", path.stem)).stem
    lines = [f"{name} {speakers.index(w['speaker']) + 1 if w.get('speaker') in speakers else 1} "
             f"{w['start']:.3f} {w['end'] - w['start']:.3f} {w['text']}" for w in meta["words"] if "start" in w]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_audacity(path) -> dict:
    """Words and pauses of an Audacity label track (its spectral-selection lines, starting with a backslash,
    are skipped)."""
    path = Path(path)
    words, pauses = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}: line {n}: expected start<TAB>end<TAB>label, got {line!r}")
        start, end = _numbers(path, n, fields[:2], "start", "end")
        text = fields[2].strip() if len(fields) > 2 else ""
        entry = {"start": round(start, 3), "end": round(end, 3)}
        if text in ("hold", "shift"):
            pauses.append({**entry, "label": text})
        elif text:
            words.append({"text": text, **entry})
    return {"words": words, **({"pauses": pauses} if pauses else {})}


def write_audacity(meta: dict, path, duration_s: float | None = None) -> Path:
    rows = [(w["start"], w["end"], w["text"]) for w in meta["words"] if "start" in w]
    rows += [(p["start"], p["end"], p["label"]) for p in meta["pauses"]]
    Path(path).write_text("".join(f"{s:.6f}\t{e:.6f}\t{t}\n" for s, e, t in sorted(rows)))
    return Path(path)
