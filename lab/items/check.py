"""`dsm-lab check DIR`: every problem of every item in a folder, each named by file and field.

Checking never stops at the first problem and never raises: a JSON file that cannot be parsed, a sound
file that cannot be decoded, a field of the wrong type, each becomes a `Problem` and the rest of the item
is still checked where it can be. The rules are those of lab/items/schema.json (see lab/items/format.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .format import LABEL_OF_KIND, LABELS, MIN_PAUSE_S, TIME_TOLERANCE_S, item_paths


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an item: its file, the field (a JSON path such as ``pauses[2].end``, or ""
    for the file as a whole) and what is wrong, in words."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


def _is_time(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class _Checker:
    def __init__(self, path: Path):
        self.path, self.problems = path, []
        self.duration: float | None = None

    def add(self, field: str, message: str):
        self.problems.append(Problem(str(self.path), field, message))

    def run(self) -> list[Problem]:
        try:
            meta = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError) as e:
            self.add("", f"cannot read the file ({e})")
            return self.problems
        except json.JSONDecodeError as e:
            self.add("", f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}")
            return self.problems
        if not isinstance(meta, dict):
            self.add("", f"the JSON must be an object with audio, words, turns and pauses, not {type(meta).__name__}")
            return self.problems
        self.audio(meta)
        for name in ("words", "turns", "pauses"):
            if name not in meta:
                self.add(name, "missing (required; an empty list is allowed)")
            elif not isinstance(meta[name], list):
                self.add(name, f"must be a list, not {type(meta[name]).__name__}")
        speakers = meta.get("speakers")
        if speakers is not None and not (isinstance(speakers, list) and all(isinstance(s, str) for s in speakers)):
            self.add("speakers", "must be a list of names (strings)")
            speakers = None
        entries = {name: meta[name] for name in ("words", "turns", "pauses") if isinstance(meta.get(name), list)}
        for name, items in entries.items():
            self.spans(name, items, speakers, times_optional=name == "words")
        return self.problems

    def audio(self, meta: dict):
        import soundfile as sf

        name = meta.get("audio")
        if name is None:
            self.add("audio", "missing (required: the sound file's name, relative to this JSON)")
            return
        if not isinstance(name, str) or not name:
            self.add("audio", f"must be a file name, not {name!r}")
            return
        wav = self.path.parent / name
        if not wav.is_file():
            self.add("audio", f"{name}: no such file beside the JSON")
            return
        try:
            info = sf.info(str(wav))
        except Exception as e:  # libsndfile's errors come in several types; any of them means unreadable
            self.add("audio", f"{name}: unreadable audio ({str(e).strip() or type(e).__name__})")
            return
        if info.frames <= 0 or info.samplerate <= 0:
            self.add("audio", f"{name}: holds no audio")
            return
        self.duration = info.frames / info.samplerate
        for field, actual in (("sample_rate", info.samplerate), ("channels", info.channels)):
            if field in meta and (isinstance(meta[field], bool) or not isinstance(meta[field], int)):
                self.add(field, f"must be a whole number, not {meta[field]!r} ({name} has {actual})")
            elif field in meta and meta[field] != actual:
                self.add(field, f"says {meta[field]!r} but {name} has {actual}")
        if "duration" in meta and (not _is_time(meta["duration"]) or abs(meta["duration"] - self.duration) > 2e-3):
            self.add("duration", f"says {meta['duration']!r} s but {name} lasts {self.duration:.3f} s")
        if "speakers" in meta and isinstance(meta["speakers"], list) and info.channels > 1 \
                and len(meta["speakers"]) != info.channels:
            self.add("speakers", f"{len(meta['speakers'])} speakers for {info.channels} channels "
                                 "(one speaker per channel)")

    def spans(self, name: str, items: list, speakers, times_optional: bool):
        last_end: dict = {}  # speaker (pauses: all of them) -> (end, index) of the previous entry
        for i, entry in enumerate(items):
            here = f"{name}[{i}]"
            if not isinstance(entry, dict):
                self.add(here, f"must be an object, not {type(entry).__name__}")
                continue
            if name == "words" and not isinstance(entry.get("text"), str):
                self.add(f"{here}.text", "missing" if "text" not in entry else "must be a string")
            if name == "pauses":
                self.pause_label(here, entry)
            speaker = entry.get("speaker")
            if speaker is not None and not isinstance(speaker, str):
                self.add(f"{here}.speaker", "must be a string")
                speaker = None  # checked with the speakerless entries from here on
            elif speaker is not None and speakers is not None and speaker not in speakers:
                self.add(f"{here}.speaker", f"{speaker!r} is not one of speakers {speakers}")
            has = [k for k in ("start", "end") if k in entry]
            if times_optional and not has:
                continue
            if len(has) < 2:
                missing = ({"start", "end"} - set(has)).pop()
                self.add(f"{here}.{missing}", "missing" + (" (a word has both times or neither)"
                                                           if times_optional else ""))
                continue
            start, end = entry["start"], entry["end"]
            bad = [k for k, v in (("start", start), ("end", end)) if not _is_time(v)]
            for k in bad:
                self.add(f"{here}.{k}", f"must be a number of seconds >= 0, not {entry[k]!r}")
            if bad:
                continue
            if end <= start:
                self.add(f"{here}.end", f"{end} s is not after its start {start} s")
                continue
            if self.duration is not None and end > self.duration + TIME_TOLERANCE_S:
                self.add(f"{here}.end", f"{end} s is past the end of the audio ({self.duration:.3f} s)")
            if name == "pauses" and end - start < MIN_PAUSE_S - 1e-9:
                self.add(here, f"lasts {1e3 * (end - start):.0f} ms; a pause lasts at least "
                               f"{1e3 * MIN_PAUSE_S:.0f} ms")
            key = None if name == "pauses" else speaker
            if key in last_end:
                prev_end, prev_start, j = last_end[key]
                who = f" of speaker {key!r}" if key is not None else ""
                if start < prev_start:
                    self.add(f"{here}.start", f"{start} s comes before {name}[{j}] ({prev_start} s): "
                                              f"{name}{who} must be in time order")
                elif start < prev_end - TIME_TOLERANCE_S:
                    self.add(f"{here}.start", f"{start} s overlaps {name}[{j}], which ends at {prev_end} s")
            last_end[key] = (end, start, i)

    def pause_label(self, here: str, pause: dict):
        if "label" in pause:
            if not isinstance(pause["label"], str) or pause["label"] not in LABELS:
                self.add(f"{here}.label", f"must be one of {list(LABELS)}, not {pause['label']!r}")
        elif "kind" in pause:
            if not isinstance(pause["kind"], str) or pause["kind"] not in LABEL_OF_KIND:
                self.add(f"{here}.kind", f"must be one of {list(LABEL_OF_KIND)}, not {pause['kind']!r}")
        else:
            self.add(f"{here}.label", "missing (hold or shift)")
        if "confidence" in pause:
            c = pause["confidence"]
            if not (isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1):
                self.add(f"{here}.confidence", f"must be a number from 0 to 1, not {c!r}")
        if "confirmed" in pause and not isinstance(pause["confirmed"], bool):
            self.add(f"{here}.confirmed", f"must be true or false, not {pause['confirmed']!r}")


def check_item(json_path) -> list[Problem]:
    """Every problem of one item (an empty list: the item is good). Never raises: a case the rules above
    did not foresee is itself a problem of the item, not a crash of the whole check."""
    checker = _Checker(Path(json_path))
    try:
        return checker.run()
    except Exception as e:  # noqa: BLE001 (one odd file must not stop the check of a folder)
        return [*checker.problems, Problem(str(json_path), "", f"could not be checked ({type(e).__name__}: {e})")]


def check_folder(folder) -> list[Problem]:
    """Every problem of every item (NAME.json) in `folder`; a folder without items is one problem."""
    folder = Path(folder)
    if not folder.is_dir():
        return [Problem(str(folder), "", "not a folder")]
    paths = item_paths(folder)
    if not paths:
        return [Problem(str(folder), "", "no items (*.json) in this folder")]
    return [p for path in paths for p in check_item(path)]


def check_cli(args) -> int:
    """`dsm-lab check DIR [--json]`: 0 when every item is good, 1 when some are not (each problem a line).
    DIR may also be one item's JSON file."""
    one = Path(args.dir).is_file()
    problems = check_item(args.dir) if one else check_folder(args.dir)
    items = 1 if one else len(item_paths(args.dir)) if Path(args.dir).is_dir() else 0
    for p in problems:
        print(json.dumps({"file": p.file, "field": p.field, "problem": p.message}) if args.json else str(p))
    if not args.json:
        bad = len({p.file for p in problems})
        print(f"{items} items, {items - bad if items else 0} good, {len(problems)} problems")
    return 1 if problems else 0
