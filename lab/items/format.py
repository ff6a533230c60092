"""The item format: one recording and what happens in it, as the turn lab and the latency lab read it.

An item is a sound file beside a JSON file (``NAME.json``) that names it:

    {
      "format": "dsm-lab item 1",              optional; written by the lab's own tools
      "audio": "NAME.wav",                     required: the sound file, relative to the JSON (WAV, FLAC, OGG...)
      "sample_rate": 24000, "channels": 2,     optional: checked against the sound file when given
      "speakers": ["A", "B"],                  optional: with one channel per speaker, speaker i is channel i
      "words":  [{"text": "set", "start": 0.30, "end": 0.57, "speaker": "A"}, ...],   times optional (both or none)
      "turns":  [{"start": 0.30, "end": 2.93, "speaker": "A"}, ...],
      "pauses": [{"start": 1.24, "end": 2.14, "label": "hold", "confidence": 0.8, "confirmed": true}, ...]
    }

Times are seconds from the start of the audio. A *turn* is a stretch one speaker holds the floor; a
*pause* is a silence of at least 100 ms inside the conversation, labelled "hold" (the speaker goes on:
an agent answering there cuts them off) or "shift" (the turn is over: an agent should answer, or the other
speaker does). `confidence` and `confirmed` come from pre-labelling (lab.prelabel) and the annotation widget.

The synthetic corpus (`dsm-lab synth`) is one producer of this format: its pauses carry `kind`
("mid_turn" or "end_of_turn"), read as "hold" and "shift". Read items carry both names, `label` and `kind`,
so that code written for either works. The full description, with every rule `dsm-lab check` applies, is in
lab/items/schema.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "dsm-lab item 1"
LABELS = ("hold", "shift")
# The synthetic corpus's pause kinds, and the labels they mean.
KIND_OF_LABEL = {"hold": "mid_turn", "shift": "end_of_turn"}
LABEL_OF_KIND = {kind: label for label, kind in KIND_OF_LABEL.items()}
MIN_PAUSE_S = 0.1  # shorter silences are not pauses (eot-bench's span, too)
TIME_TOLERANCE_S = 0.01  # a time may pass the end of the audio, or the previous label, by this much


def schema_path() -> Path:
    """The JSON schema of an item's JSON file (shipped inside the package)."""
    return Path(__file__).with_name("schema.json")


def pause_label(pause: dict) -> str | None:
    """A pause's label, "hold" or "shift", from `label` or from the synthetic corpus's `kind` (None: neither)."""
    if "label" in pause:
        return pause["label"]
    return LABEL_OF_KIND.get(pause.get("kind"))


def timed(words: list[dict]) -> list[dict]:
    """The words that carry times (a transcript may give text alone)."""
    return [w for w in words if "start" in w and "end" in w]


def normalized(meta: dict) -> dict:
    """The item's metadata as the labs read it: every pause with both `label` and `kind`, every turn and
    pause time a float. Assumes the item passed lab.items.check."""
    pauses = []
    for p in meta["pauses"]:
        label = pause_label(p)
        pauses.append({**p, "start": float(p["start"]), "end": float(p["end"]), "label": label,
                       "kind": KIND_OF_LABEL[label]})
    turns = [{**t, "start": float(t["start"]), "end": float(t["end"])} for t in meta["turns"]]
    return {**meta, "turns": turns, "pauses": pauses}


def write_item(json_path, meta: dict, audio: np.ndarray | None = None, sample_rate: int | None = None) -> Path:
    """Write an item's JSON (and, given `audio` (samples x channels, or mono) and `sample_rate`, its sound
    file as 16-bit WAV named by meta["audio"], default NAME.wav). Times are rounded to the millisecond; the
    synthetic corpus's `kind` is replaced by `label`. Returns the JSON path."""
    import soundfile as sf

    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio_name = meta.get("audio") or f"{path.stem}.wav"
    if audio is not None:
        if sample_rate is None:
            raise ValueError(f"{path}: writing audio needs its sample_rate")
        sf.write(path.parent / audio_name, np.asarray(audio, dtype=np.float32), int(sample_rate), subtype="PCM_16")
    keep = {k: v for k, v in meta.items() if k not in ("format", "audio", "words", "turns", "pauses", "duration")}
    if audio is not None:  # what the file written says, not what the metadata said before
        keep.update(sample_rate=int(sample_rate), channels=1 if np.ndim(audio) == 1 else int(np.shape(audio)[1]))

    def times(entry: dict) -> dict:
        return {k: (round(float(v), 3) if k in ("start", "end") else v) for k, v in entry.items()}

    pauses = [times({**{k: v for k, v in p.items() if k != "kind"}, "label": pause_label(p)})
              for p in meta.get("pauses", [])]
    out = {"format": FORMAT, "audio": audio_name, **keep,
           "words": [times(w) for w in meta.get("words", [])],
           "turns": [times(t) for t in meta.get("turns", [])], "pauses": pauses}
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return path


def item_paths(folder) -> list[Path]:
    """The items of a folder: its *.json files, in name order."""
    return sorted(Path(folder).glob("*.json"))
