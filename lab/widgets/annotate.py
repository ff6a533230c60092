"""The annotator: confirm or correct the hold/shift label of every pause of an item, then save it.

    a = Annotator("my-calls/017.json")      # an item (lab/items/format.py), e.g. written by dsm-lab prelabel
    a                                       # the waveform with the words on it, every pause a coloured span
    a.save()                                # or the page's Save button: the labels go back into the JSON

In the page (annotate.js): a click on a pause flips its label (hold <-> shift) and selects it; with the
widget focused, `h` / `s` set the selected pause's label, `c` confirms it as it is, `n` / `p` (or Tab /
Shift+Tab) select the next / previous pause, `z` undoes, space plays. Any label set or confirmed is marked
`confirmed`. Play: the region dragged on the waveform, else the selected pause with `context_s` around it;
the kernel sends that stretch as WAV bytes to an <audio> element (no CDN, nothing fetched). The page shows
`view_s` seconds at a time (arrows page through): a long recording is read a window at a time from disk.
Everything the page does is a method here too (set_label, confirm, undo, play_bytes, save), for scripts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from ..items import read_meta
from ..items.format import LABELS, write_item
from .attention import envelope

HERE = Path(__file__).parent
ENVELOPE_POINTS = 1200  # waveform min/max pairs of the window sent to the page


class Annotator(anywidget.AnyWidget):
    _esm = HERE / "annotate.js"
    _css = HERE / "widgets.css"
    duration_s = traitlets.Float(0.0).tag(sync=True)
    view_start_s = traitlets.Float(0.0).tag(sync=True)  # the window shown (the page pages it)
    view_s = traitlets.Float(20.0).tag(sync=True)
    wave = traitlets.List([]).tag(sync=True)  # envelope of the window's mix
    words = traitlets.List([]).tag(sync=True)  # [{text, start, end, speaker?}] (timed words)
    pauses = traitlets.List([]).tag(sync=True)  # the item's pauses, labels as they stand
    selected = traitlets.Int(-1).tag(sync=True)  # index of the selected pause (-1: none)
    status = traitlets.Unicode("").tag(sync=True)
    saved = traitlets.Int(0).tag(sync=True)  # how many times the labels were saved

    def __init__(self, item_json, view_s: float = 20.0, context_s: float = 0.5, **kwargs):
        self.path = Path(item_json)
        meta = read_meta(self.path)
        self.meta, self.context_s = meta, float(context_s)
        self.audio_path = self.path.parent / meta["audio"]
        self.sample_rate = meta["sample_rate"]
        self.history: list[tuple[int, dict]] = []  # (pause index, the pause before the change): undo
        pauses = [{k: v for k, v in p.items() if k != "kind"} for p in meta["pauses"]]
        words = [{k: w[k] for k in ("text", "start", "end", "speaker") if k in w}
                 for w in meta["words"] if "start" in w]
        super().__init__(duration_s=float(meta["duration"]), view_s=float(view_s), pauses=pauses, words=words,
                         **kwargs)
        self.observe(self._load_window, names=["view_start_s", "view_s"])
        self.on_msg(self._on_msg)
        self._load_window()
        self.status = f"{len(pauses)} pauses, {self.confirmed_count()} confirmed"

    # -------------------------------------------------------------------------------- what the page asks

    def _on_msg(self, widget, content, buffers):
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "label":
                self.set_label(int(content["index"]), str(content["label"]))
            elif kind == "confirm":
                self.confirm(int(content["index"]))
            elif kind == "undo":
                self.undo()
            elif kind == "save":
                self.save()
            elif kind == "play":
                start, end = float(content["start"]), float(content["end"])
                self.send({"type": "audio", "start": start, "end": end}, [self.play_bytes(start, end)])
        except (KeyError, ValueError, TypeError, OSError) as e:
            self.status = f"error: {e}"

    def _load_window(self, change=None):
        import soundfile as sf

        start = int(max(0.0, self.view_start_s) * self.sample_rate)
        stop = int(min(self.duration_s, self.view_start_s + self.view_s) * self.sample_rate)
        audio, _ = sf.read(str(self.audio_path), start=start, stop=max(start + 1, stop), dtype="float32",
                           always_2d=True)
        self.wave = envelope(audio.mean(1), ENVELOPE_POINTS)

    # ---------------------------------------------------------------------------------------- the labels

    def _change(self, index: int, **fields):
        if not 0 <= index < len(self.pauses):
            raise ValueError(f"pause index {index} is out of range (0..{len(self.pauses) - 1})")
        pauses = [dict(p) for p in self.pauses]
        self.history.append((index, dict(pauses[index])))
        pauses[index].update(fields, confirmed=True)
        self.pauses = pauses
        self.selected = index
        self.status = (f"pause {index} ({pauses[index]['start']:.2f}-{pauses[index]['end']:.2f} s): "
                       f"{pauses[index]['label']}; {self.confirmed_count()} of {len(pauses)} confirmed (unsaved)")

    def set_label(self, index: int, label: str):
        """Label pause `index` "hold" or "shift" (and mark it confirmed)."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {list(LABELS)}, not {label!r}")
        self._change(index, label=label)

    def confirm(self, index: int):
        """Mark pause `index` confirmed with the label it has."""
        self._change(index)

    def undo(self) -> bool:
        """Take back the last change; False when there is none."""
        if not self.history:
            self.status = "nothing to undo"
            return False
        index, before = self.history.pop()
        pauses = [dict(p) for p in self.pauses]
        pauses[index] = before
        self.pauses = pauses
        self.selected = index
        self.status = f"undone: pause {index} is {before['label']} again"
        return True

    def confirmed_count(self) -> int:
        return sum(bool(p.get("confirmed")) for p in self.pauses)

    def save(self, path=None) -> Path:
        """Write the labels into the item's JSON (or `path`), every other field kept as it was."""
        target = Path(path) if path is not None else self.path
        raw = json.loads(self.path.read_text())
        raw["pauses"] = self.pauses
        write_item(target, raw)
        self.saved += 1
        self.status = f"saved {len(self.pauses)} labels ({self.confirmed_count()} confirmed) to {target.name}"
        return target

    # -------------------------------------------------------------------------------------------- sound

    def play_bytes(self, start_s: float, end_s: float) -> bytes:
        """The recording from `start_s` to `end_s` (clipped to it) as 16-bit WAV bytes, all its channels."""
        import soundfile as sf

        start = int(np.clip(start_s, 0, self.duration_s) * self.sample_rate)
        stop = int(np.clip(end_s, 0, self.duration_s) * self.sample_rate)
        if stop <= start:
            raise ValueError(f"nothing to play between {start_s:.2f} s and {end_s:.2f} s")
        audio, rate = sf.read(str(self.audio_path), start=start, stop=stop, dtype="float32", always_2d=True)
        buf = io.BytesIO()
        sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()
