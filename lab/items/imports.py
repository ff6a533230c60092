"""`dsm-lab import KIND SRC --out DIR` and `dsm-lab export-labels KIND ITEM --out FILE`: other label
formats to items and back.

    textgrid  Praat TextGrid (praatio)         vtt  WebVTT (webvtt-py)         srt  SubRip (pysrt)
    ctm       word alignments (CTM)           audacity  Audacity label track   eot-bench  LiveKit's parquet layout

A label file's sound is the file beside it with the same name and a sound suffix (or `audio=`); it is
copied next to the item, so that a folder of items stands alone. What the format leaves out is derived
(lab/items/derive.py): the pauses from the gaps between words, the turns from the pauses. Every item
written is checked (lab/items/check.py). eot-bench's rows carry their audio: each becomes an item whose
pauses are its silence spans (the last "shift", the others "hold") and whose words are unknown.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .check import check_item
from .derive import complete
from .format import write_item
from .plain_labels import read_audacity, read_ctm, write_audacity, write_ctm
from .subtitles import read_srt, read_vtt, write_srt, write_vtt
from .textgrid import read_textgrid, write_textgrid

READERS = {"textgrid": (read_textgrid, (".TextGrid", ".textgrid")), "vtt": (read_vtt, (".vtt",)),
           "srt": (read_srt, (".srt",)), "ctm": (read_ctm, (".ctm",)),
           "audacity": (read_audacity, (".txt",))}
WRITERS = {"textgrid": write_textgrid, "vtt": write_vtt, "srt": write_srt, "ctm": write_ctm,
           "audacity": write_audacity}
SOUND_SUFFIXES = (".wav", ".flac", ".ogg", ".WAV", ".FLAC", ".OGG")


def sound_beside(label_file: Path) -> Path:
    """The sound file with the label file's name (call.TextGrid -> call.wav, call.flac, call.ogg)."""
    for suffix in SOUND_SUFFIXES:
        if label_file.with_suffix(suffix).is_file():
            return label_file.with_suffix(suffix)
    raise FileNotFoundError(f"{label_file}: no sound file beside it with the same name "
                            f"({', '.join(label_file.stem + s for s in SOUND_SUFFIXES[:3])}); give it with --audio")


def import_file(kind: str, src, out_dir, audio=None) -> Path:
    """One label file (and its sound) -> an item in `out_dir`; returns the item's JSON path."""
    import soundfile as sf

    if kind not in READERS:
        raise ValueError(f"unknown label format {kind!r}; known: {sorted(READERS)} and eot-bench")
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"label file not found: {src}")
    sound = Path(audio) if audio is not None else sound_beside(src)
    try:
        duration = sf.info(str(sound)).duration
    except Exception as e:
        raise ValueError(f"{sound}: unreadable audio ({e})") from e
    labels = complete(READERS[kind][0](src), duration)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if sound.resolve() != (out_dir / sound.name).resolve():
        shutil.copyfile(sound, out_dir / sound.name)
    path = write_item(out_dir / f"{src.stem}.json", {**labels, "audio": sound.name, "source": f"{kind}: {src.name}"})
    problems = check_item(path)
    if problems:
        raise ValueError(f"{src}: the item made from it has {len(problems)} problem(s):\n"
                         + "\n".join(map(str, problems)))
    return path


def import_eotbench(src, out_dir, limit: int | None = None) -> list[Path]:
    """Every row of eot-bench's parquet files under `src` -> an item (WAV and JSON) in `out_dir`."""
    from ..eotbench import load_eotbench

    out = []
    for turn in load_eotbench(src, limit):
        duration = len(turn.audio) / turn.sample_rate
        pauses = [{"start": s["start"], "end": min(s["end"], duration),
                   "label": "shift" if s["label"] == "eot" else "hold"} for s in turn.spans]
        speech_end = next((p["start"] for p in pauses if p["label"] == "shift"), duration)
        meta = {"audio": f"{turn.id}.wav", "language": turn.language, "words": [],
                "turns": [{"start": 0.0, "end": speech_end}] if speech_end > 0 else [], "pauses": pauses,
                "source": "eot-bench"}
        out.append(write_item(Path(out_dir) / f"{turn.id}.json", meta, turn.audio, turn.sample_rate))
    return out


def import_folder(kind: str, src, out_dir, audio=None) -> list[Path]:
    """A label file, or every label file of a folder (by its format's suffixes), -> items in `out_dir`."""
    if kind == "eot-bench":
        return import_eotbench(src, out_dir)
    src = Path(src)
    if src.is_dir():
        suffixes = READERS[kind][1] if kind in READERS else ()
        files = sorted(p for p in src.iterdir() if p.suffix in suffixes)
        if not files:
            raise FileNotFoundError(f"no {kind} files ({', '.join(suffixes)}) in {src}")
        return [import_file(kind, f, out_dir) for f in files]
    return [import_file(kind, src, out_dir, audio)]


def export_item(kind: str, item_json, out) -> Path:
    """An item's words and pause labels (and, for TextGrids, turns) written as `kind`."""
    from .read import read_meta

    if kind not in WRITERS:
        raise ValueError(f"cannot write {kind!r}; writable: {sorted(WRITERS)}")
    meta = read_meta(item_json)
    return WRITERS[kind](meta, Path(out), meta["duration"])


def import_cli(args) -> int:
    paths = import_folder(args.kind, args.src, args.out, args.audio)
    for p in paths:
        print(p)
    print(f"{len(paths)} items in {args.out} (check them: dsm-lab check {args.out})")
    return 0


def export_cli(args) -> int:
    print(export_item(args.kind, args.item, args.out))
    return 0
