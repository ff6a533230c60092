"""Tables for the teaching notebooks (pandas DataFrames, shown as HTML), computed here so they are tested.

- `sample(name)`: a clip of the package's sample clips (lab/data/samples) with its reference words.
- `step_table`: what the model sees at each step (the audio frame, the text token fed back) and what it writes.
- `word_table`: each word's timestamp against the reference, and when it came out.
- `alignment_table`: the one-frame alignment question, "training" against "scripts", on the same clips.
- `delay_sweep`: WER and emission latency of the models trained with different delays, when they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import FRAME_RATE
from ..metrics import match_words


@dataclass
class Sample:
    name: str
    wav: Path
    audio: np.ndarray
    sample_rate: int
    meta: dict

    @property
    def words(self) -> list[dict]:
        return self.meta["words"]

    @property
    def json(self) -> Path:
        return self.wav.with_suffix(".json")

    @property
    def text(self) -> str:
        return " ".join(w["text"] for w in self.words)

    def words_frame(self) -> pd.DataFrame:
        """The reference alignment: one row a word, start and end in seconds."""
        return pd.DataFrame(self.words, columns=["text", "start", "end"])

    def __repr__(self):
        return f"Sample({self.name!r}, {self.text!r}, {len(self.audio) / self.sample_rate:.2f} s)"


def samples_dir() -> Path:
    from ..resources import samples_root

    return samples_root()


def sample(name: str | Path) -> Sample:
    """A clip with its alignment: a name among the sample clips ("weather"), or a path to its .json or .wav."""
    from ..items import read_item as load_item

    path = Path(name)
    if not path.suffix:
        path = samples_dir() / f"{name}.json"
    path = path.with_suffix(".json")
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in samples_dir().glob("*.json"))) or "none"
        raise FileNotFoundError(f"sample {name!r} not found ({path}); samples here: {known}")
    audio, meta = load_item(path)
    return Sample(path.stem, path.with_name(meta["audio"]), audio, int(meta["sample_rate"]), meta)


def all_samples(n: int | None = None) -> list[Sample]:
    """The sample clips (the first `n`), in name order."""
    return [sample(p) for p in sorted(samples_dir().glob("*.json"))[:n]]


def item_jsons(folder=None, n: int | None = None) -> list[Path]:
    """The items the latency lab replays: those of `folder` (your recordings, lab/items/format.py; checked
    first, every problem named), or the sample clips when None; the first `n`."""
    if folder is None:
        return [s.json for s in all_samples(n)]
    from ..items import check_folder, item_paths

    problems = check_folder(folder)
    if problems:
        raise ValueError(f"{folder}: {len(problems)} problem(s):\n" + "\n".join(map(str, problems[:20])))
    return item_paths(folder)[:n]


def step_table(transcript, delay_frames: int, alignment: str = "training", max_rows: int | None = 30):
    """One row a step: the audio frame it sees (its time span), the text token fed back to it, the token it
    writes, and whether that token belongs to a word spoken D frames earlier."""
    steps = transcript.steps
    shift = 1 if alignment == "training" else 0
    rows = []
    prev = "<start>"
    for r in steps.itertuples():
        frame = r.step - shift
        sees = "initial embedding" if r.step == 0 or frame < 0 else \
            f"frame {frame} ({frame / FRAME_RATE:.2f}-{(frame + 1) / FRAME_RATE:.2f} s)"
        rows.append({"step": r.step, "runs at (s)": r.time_s, "audio it sees": sees, "text fed back": prev,
                     "text it writes": _show(r.piece), "describes audio near (s)":
                     round(max(0.0, r.step - delay_frames) / FRAME_RATE, 2)})
        prev = _show(r.piece)
    table = pd.DataFrame(rows)
    return table.head(max_rows) if max_rows else table


def _show(piece: str) -> str:
    return "PAD" if piece == "" else ("EPAD" if piece == "<epad>" else piece.replace("\u2581", "▁"))


def word_table(reference: list[dict], words) -> pd.DataFrame:
    """Matched words: reference start/end, the model's timestamp, its error, and the emission latency
    (emitted at, minus the reference end of the word)."""
    pairs = match_words([w["text"] for w in reference], [w.text for w in words])
    rows = []
    for i, j in pairs:
        ref, hyp = reference[i], words[j]
        rows.append({"word": hyp.text, "ref start (s)": ref["start"], "timestamp (s)": round(hyp.start_s, 3),
                     "timestamp error (s)": round(hyp.start_s - ref["start"], 3), "ref end (s)": ref["end"],
                     "emitted at (s)": hyp.emitted_s, "emission latency (s)": round(hyp.emitted_s - ref["end"], 3)})
    return pd.DataFrame(rows)


def evaluate(model, clips: list[Sample], alignment: str | None = None, tail_s: float = 3.0) -> dict:
    """WER, timestamp error and emission latency of `model` over `clips`: lab.evaluate.run_items on their
    files (one streaming pass each, the clip followed by `tail_s` of its own noise floor)."""
    from ..evaluate import run_items, transcription_summary

    s = transcription_summary(run_items(model, [c.json for c in clips], tail_s=tail_s, alignment=alignment))
    return {"wer": s["wer"], "timestamp_error_s": s["timestamp_error_s"], "latency_p50_s": s["emission_latency_p50_s"],
            "latency_p90_s": s["emission_latency_p90_s"], "words": s["words"]}


def alignment_table(model_source, clips: list[Sample]) -> pd.DataFrame:
    """The same weights run with both frame alignments. They are one computation one step apart: "scripts"
    (step t sees frame t) is the training input of step t + 1, frame 0 unheard. `same tokens, one step
    earlier` checks it clip by clip; what differs is when the words come out (emission latency)."""
    from ..audio import load_audio
    from ..checkpoint import load

    rows, tokens = [], {}
    for alignment in ("training", "scripts"):
        model = load(model_source, alignment=alignment)
        tokens[alignment] = [model.transcribe(load_audio(c.wav)).steps["token"].tolist() for c in clips]
        rows.append({"alignment": alignment, "step t sees": "frame t-1" if alignment == "training" else "frame t",
                     **evaluate(model, clips)})
    same = all(t[1:] == s[:len(t) - 1] for t, s in zip(tokens["training"], tokens["scripts"]))
    rows[0]["same tokens, one step earlier"], rows[1]["same tokens, one step earlier"] = "(reference)", same
    return pd.DataFrame(rows).round(3)


SWEEP_PREFIX = "dsm-tiny-en-d"  # the delay sweep: dsm-tiny-en-d2, -d6, -d12 (one architecture, D frames)


def sweep_models(prefix: str = SWEEP_PREFIX) -> list[Path]:
    """The delay sweep's model folders (`<prefix><D>`) along lab.checkpoint.model_dirs(), in order of D; the
    first folder of each name wins, as it does for lab.load(name)."""
    from ..checkpoint import model_dirs

    found: dict[str, Path] = {}
    for root in model_dirs():
        for p in sorted(root.glob(f"{prefix}*/config.json")):
            if p.parent.name[len(prefix):].isdigit():
                found.setdefault(p.parent.name, p.parent)
    return sorted(found.values(), key=lambda p: int(p.name[len(prefix):]))


def delay_sweep(clips: list[Sample], folders: list[Path] | None = None) -> pd.DataFrame | None:
    """One row a model: its delay D (frames and seconds), WER and emission latency on `clips`.

    `folders` defaults to the sweep's models (sweep_models()); with fewer than two of them there is no
    trade-off to show: a note says which are missing and None is returned.
    """
    from ..checkpoint import load

    folders = sweep_models() if folders is None else folders
    if len(folders) < 2:
        print(f"delay sweep skipped: it needs at least two models {SWEEP_PREFIX}<D> among the models (D in frames), "
              f"found {[Path(f).name for f in folders] or 'none'}; train them with `dsm-lab train --delay-frames D`")
        return None
    rows = []
    for folder in folders:
        model = load(folder)
        rows.append({"model": Path(folder).name, "delay_frames": model.cfg.delay_frames,
                     "delay_s": model.cfg.delay_frames / FRAME_RATE, **evaluate(model, clips)})
    return pd.DataFrame(rows).sort_values("delay_frames").reset_index(drop=True).round(3)
