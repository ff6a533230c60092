"""Pre-labelling a raw recording: words, pauses and a proposed hold/shift label for every pause, written
as an item (lab/items/format.py) for a person to confirm (lab.widgets.Annotator, or any editor).

    item = prelabel(model, "call.wav", "my-calls/")     # lab.load() or lab.load("kyutai/stt-1b-en_fr")

One streaming pass (lab.recording_pass: constant memory, any length, a progress bar) gives the model's
words, and Silero VAD's speech probability for the mix and for each channel. Speech is where Silero says
so (its own rule: on at 0.5, off below 0.35); every silence of at least 100 ms between speech, and the one
after the last speech, is a pause. Each pause's label comes from three rules, each adding evidence for
"shift" (the turn is over) or against it, in `shift_probability`:

- **speaker change** (two channels: one speaker each): the channel that spoke last before the pause is not
  the one that speaks first after it. Strong evidence; the same speaker going on is evidence for "hold"
  (a finished sentence and a long silence before it still propose "shift": a turn the other side let pass);
- **sentence-final word**: the model's last word before the pause ends a sentence ("." "?" "!"), or does not;
- **long silence**: at least `long_s` seconds of silence, or a short one (under 0.5 s).

The label is "shift" when the probability is at least 0.5; the confidence is how far it is from a coin
toss (max(p, 1 - p)); `reason` lists the rules that spoke. Nothing is `confirmed` until a person says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .items.derive import split_at_shifts
from .items.format import MIN_PAUSE_S
from .metrics import normalize
from .recording_pass import RecordingPass, stream_recording

SPEECH_ON, SPEECH_OFF = 0.5, 0.35  # Silero's threshold and its neg_threshold (threshold - 0.15)
LONG_SILENCE_S = 1.5
SHORT_SILENCE_S = 0.5
LOOK_S = 0.3  # how much speech before and after a pause says who spoke


def speech_segments(times_s, probs, on: float = SPEECH_ON, off: float = SPEECH_OFF) -> list[tuple[float, float]]:
    """(start, end) of each stretch of speech in Silero's chunk probabilities (chunk end times `times_s`)."""
    t, p = np.asarray(times_s, float), np.asarray(probs, float)
    chunk = t[0] if len(t) else 0.0
    segments, start = [], None
    for ti, pi in zip(t, p):
        if start is None and pi >= on:
            start = ti - chunk
        elif start is not None and pi < off:
            segments.append((start, ti - chunk))
            start = None
    if start is not None:
        segments.append((start, float(t[-1])))
    return segments


def _union(segment_lists) -> list[tuple[float, float]]:
    merged = []
    for s, e in sorted(x for segs in segment_lists for x in segs):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def shift_probability(speaker_changes: bool | None, sentence_final: bool | None, silence_s: float,
                      long_s: float = LONG_SILENCE_S) -> tuple[float, list[str]]:
    """The rules of the module docstring as a probability that the pause is a "shift", and their reasons.
    None: the rule cannot tell (one channel; no word before the pause)."""
    p, reasons = 0.5, []
    if speaker_changes is True:
        p, reasons = 0.95, ["the speaker changes"]
    elif speaker_changes is False:  # in hindsight the floor was held: only a long silence makes it a missed shift
        p, reasons = 0.2, ["the same speaker goes on"]
    if sentence_final is True:
        p += 0.2
        reasons.append("the last word ends a sentence")
    elif sentence_final is False:
        p -= 0.2
        reasons.append("the last word does not end a sentence")
    if silence_s >= long_s:
        p += 0.2
        reasons.append(f"a long silence ({silence_s:.1f} s)")
    elif silence_s < SHORT_SILENCE_S:
        p -= 0.1
        reasons.append(f"a short silence ({silence_s:.2f} s)")
    return float(np.clip(p, 0.02, 0.98)), reasons


def _mean_prob(rec: RecordingPass, signal, start: float, end: float) -> float:
    t, p = rec.silero[signal]
    inside = (t > start) & (t <= end + 1e-9)
    return float(p[inside].mean()) if inside.any() else 0.0


def _who(rec: RecordingPass, start: float, end: float) -> int | None:
    """The channel that speaks most in [start, end] (None: one channel)."""
    if rec.channels < 2:
        return None
    return int(np.argmax([_mean_prob(rec, c, start, end) for c in range(rec.channels)]))


def propose(rec: RecordingPass, long_s: float = LONG_SILENCE_S, min_pause_s: float = MIN_PAUSE_S) -> dict:
    """The item's labels (words, turns, pauses with proposed labels) from one pass over a recording."""
    per_channel = [speech_segments(*rec.silero[c]) for c in range(rec.channels)] if rec.channels > 1 else []
    speech = _union(per_channel) if per_channel else speech_segments(*rec.silero["mix"])
    speakers = [f"channel {c + 1}" for c in range(rec.channels)] if rec.channels > 1 else None
    gaps = [(a[1], b[0]) for a, b in zip(speech, speech[1:]) if b[0] - a[1] >= min_pause_s - 1e-9]
    if speech and rec.duration_s - speech[-1][1] >= min_pause_s - 1e-9:
        gaps.append((speech[-1][1], rec.duration_s))
    words = [w for w in rec.words if normalize(w.text)]
    pauses = []
    for start, end in gaps:
        last = end >= rec.duration_s - 1e-9
        before, after = _who(rec, start - LOOK_S, start), None if last else _who(rec, end, end + LOOK_S)
        changes = None if before is None or after is None else before != after
        spoken = [w for w in words if w.start_s < start]
        final = spoken[-1].text.rstrip()[-1:] in ".?!" if spoken else None
        p, reasons = shift_probability(changes, final, end - start, long_s)
        if last:
            p, reasons = max(p, 0.9), ["the recording ends", *reasons]
        pauses.append({"start": round(start, 3), "end": round(end, 3), "label": "shift" if p >= 0.5 else "hold",
                       "confidence": round(max(p, 1 - p), 3), "reason": "; ".join(reasons), "confirmed": False})
    return {"words": _item_words(rec, words, speakers), "turns": _turns(rec, speech, pauses, speakers),
            "pauses": pauses, **({"speakers": speakers} if speakers else {})}


def _item_words(rec: RecordingPass, words, speakers) -> list[dict]:
    """The model's words as item words: text normalized (`written` as the model wrote it), an end where the
    model gave none (the next word's start, at most 0.4 s on), in order and inside the audio per speaker."""
    out, last_end = [], {}
    for i, w in enumerate(words):
        nxt = words[i + 1].start_s if i + 1 < len(words) else rec.duration_s
        start = max(0.0, float(w.start_s))
        end = min(float(w.end_s) if w.end_s is not None else start + 0.4, nxt, rec.duration_s)
        who = _who(rec, start, max(end, start + 0.1))
        speaker = speakers[who] if speakers else None
        start = max(start, last_end.get(speaker, 0.0))
        if end - start < 0.01:
            continue  # nothing left of it once kept in order (the model dated two words to one step)
        entry = {"text": normalize(w.text), "written": w.text, "start": round(start, 3), "end": round(end, 3)}
        out.append({**entry, "speaker": speaker} if speaker else entry)
        last_end[speaker] = round(end, 3)
    return out


def _turns(rec: RecordingPass, speech, pauses, speakers) -> list[dict]:
    """Stretches of speech between "shift" pauses, each given the channel that speaks most in it."""
    shifts = [p["start"] for p in pauses if p["label"] == "shift"]
    groups = split_at_shifts(speech, shifts, lambda seg: (seg[0], seg[1]), tolerance_s=1e-3)
    turns = []
    for g in groups:
        turn = {"start": round(g[0][0], 3), "end": round(min(g[-1][1], rec.duration_s), 3)}
        if speakers:
            turn["speaker"] = speakers[_who(rec, turn["start"], turn["end"])]
        if turn["end"] > turn["start"]:
            turns.append(turn)
    return turns


def prelabel(model, audio_path, out_dir, progress: bool = True, block_s: float = 10.0, on_block=None) -> Path:
    """A raw recording -> an item in `out_dir` (its sound copied there, unless already there): the model's
    words, the pauses, proposed labels. Returns the item's JSON path; check it with lab.items.check_item."""
    from .items import write_item

    audio_path, out_dir = Path(audio_path), Path(out_dir)
    rec = stream_recording(model, audio_path, block_s=block_s, progress=progress, on_block=on_block,
                           silero_signals="channels")
    labels = propose(rec)
    out_dir.mkdir(parents=True, exist_ok=True)
    if audio_path.resolve() != (out_dir / audio_path.name).resolve():
        shutil.copyfile(audio_path, out_dir / audio_path.name)  # copied in blocks: constant memory
    model_name = getattr(getattr(model, "cfg", None), "name", None)
    return write_item(out_dir / f"{audio_path.stem}.json",
                      {"audio": audio_path.name, **labels, "source": f"prelabel ({model_name or 'no model'})"})


def prelabel_cli(args) -> int:
    import json

    from .checkpoint import load

    path = prelabel(load(args.model), args.audio, args.out, progress=not args.json)
    pauses = json.loads(path.read_text())["pauses"]
    if args.json:
        for p in pauses:
            print(json.dumps(p), flush=True)
    else:
        shifts = sum(p["label"] == "shift" for p in pauses)
        print(f"{path}: {len(pauses)} pauses proposed ({shifts} shift, {len(pauses) - shifts} hold); "
              "confirm them in notebook 03's annotator, then: dsm-lab check " + str(path.parent))
    return 0
