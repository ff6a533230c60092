"""One pass over a recording of any length, a block at a time, in constant memory: what pre-labelling and
the turn lab need of it, computed as a live stream would, without the audio ever being in memory whole.

    rec = stream_recording(model, "meeting.wav", progress=True)   # a 30-minute, two-channel call: fine
    rec.words            # lab.Word, the model's transcript of the mix
    rec.steps            # DataFrame: time_s and p_eot_{h}s per model step (a few numbers a step)
    rec.silero["mix"]    # (chunk end times, speech probability) of the mix; rec.silero[0], [1]: per channel
    rec.energy["mix"]    # (frame end times, is_speech): SilencePolicy's energy VAD, same result as on the whole
    rec.trace()          # a lab.turns.Trace whose features are these: every policy and baseline runs on it

Memory: one block of audio (10 s by default), the model's stream state (a ring buffer), Silero's state, and
the outputs, which are a few numbers per 80 ms step or 32 ms chunk (a 30-minute call: a few MB).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import StreamingResampler
from .events import Step, Word, WordEnd, eot_column
from .silero import SILERO_CHUNK, SILERO_RATE

ENERGY_DEFAULTS = (0.02, -60.0, -35.0, 10.0)  # SilencePolicy's frame_s, floor_db, relative_db, margin_db


class StreamingEnergyVAD:
    """lab.turns.energy_vad a block at a time: the same frames, the same running noise floor and peak, so
    the same decisions as on the whole recording."""

    def __init__(self, sample_rate: int, frame_s: float = 0.02, floor_db: float = -60.0, relative_db: float = -35.0,
                 margin_db: float = 10.0):
        self.n = int(round(frame_s * sample_rate))
        self.frame_s, self.floor_db, self.relative_db, self.margin_db = frame_s, floor_db, relative_db, margin_db
        self.rest = np.zeros(0)
        self.noise_db, self.peak_db, self.frames = np.inf, -np.inf, 0

    def push(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([self.rest, np.asarray(x, np.float64)])
        whole = len(x) // self.n * self.n
        frames, self.rest = x[:whole].reshape(-1, self.n), x[whole:]
        level_db = 10 * np.log10((frames**2).mean(1) + 1e-12)
        noise = np.minimum.accumulate(np.concatenate([[self.noise_db], level_db]))[1:]
        peak = np.maximum.accumulate(np.concatenate([[self.peak_db], level_db]))[1:]
        if len(level_db):
            self.noise_db, self.peak_db = noise[-1], peak[-1]
        threshold = np.maximum(self.floor_db, np.maximum(noise + self.margin_db, peak + self.relative_db))
        times = (self.frames + np.arange(len(frames)) + 1) * self.frame_s
        self.frames += len(frames)
        return times, level_db > threshold


class StreamingSilero:
    """Silero VAD over several signals at once (one batch row each: the mix and every channel), its state
    carried from block to block: (chunk end times, speech probability per signal)."""

    def __init__(self, sample_rate: int, signals: int):
        from .silero import _silero_model

        self.model = _silero_model()
        self.model.reset_states()
        # A shorter filter than the model's resampler (half_width 4, not 10): a VAD needs no 8 kHz band edge,
        # and on a long recording this resampling is a third of Silero's cost.
        self.resamplers = [StreamingResampler(sample_rate, SILERO_RATE, half_width=4) for _ in range(signals)]
        self.rest = np.zeros((signals, 0), np.float32)
        self.chunks = 0

    def push(self, signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x16 = np.stack([r.push(s.astype(np.float64)) for r, s in zip(self.resamplers, signals)]).astype(np.float32)
        x = np.concatenate([self.rest, x16], axis=1)
        n = x.shape[1] // SILERO_CHUNK
        self.rest = x[:, n * SILERO_CHUNK:]
        probs = np.zeros((len(x), n), np.float32)
        with torch.no_grad():
            for k in range(n):
                chunk = torch.from_numpy(np.ascontiguousarray(x[:, k * SILERO_CHUNK:(k + 1) * SILERO_CHUNK]))
                probs[:, k] = self.model(chunk, SILERO_RATE).numpy()[:, 0]
        times = (self.chunks + np.arange(n) + 1) * SILERO_CHUNK / SILERO_RATE
        self.chunks += n
        return times, probs


@dataclass
class RecordingPass:
    """What one pass over a recording gives (see the module docstring). Keys of `energy` and `silero`:
    "mix", then 0, 1, ... for the channels (two or more channels only)."""

    name: str
    sample_rate: int
    channels: int
    duration_s: float
    words: list[Word]
    steps: pd.DataFrame
    energy: dict = field(default_factory=dict)
    silero: dict = field(default_factory=dict)

    def trace(self):
        """The pass as a lab.turns.Trace: the model's steps and words, and the mix's energy VAD and Silero
        probabilities in its cache, where SilencePolicy, VetoedSilencePolicy and SileroPolicy look first."""
        from .trace import Trace

        live = self.steps[self.steps.time_s <= self.duration_s + 1e-6]  # the flush's steps: past the audio
        trace = Trace.from_steps(live, None, self.sample_rate, self.name, words=self.words)
        trace.cache[("energy", *ENERGY_DEFAULTS)] = self.energy["mix"]
        if "mix" in self.silero:  # else SileroPolicy computes it from... nothing: there is no audio
            trace.cache["silero"] = self.silero["mix"]
        return trace


def _blocks(path: Path, block_s: float):
    import soundfile as sf

    info = sf.info(str(path))
    frames = max(1, int(block_s * info.samplerate))
    return info, sf.blocks(str(path), blocksize=frames, dtype="float32", always_2d=True)


def stream_recording(model, path, block_s: float = 10.0, progress: bool = False, on_block=None,
                     silero_signals: str = "all") -> RecordingPass:
    """Stream the recording at `path` through `model` (None: no model, the voice activity alone), Silero VAD
    and the energy VAD, a block of `block_s` seconds at a time; the model hears the mix of the channels.
    `silero_signals`: "all" (the mix and each channel), "mix" (what the turn lab's baseline reads) or
    "channels" (what pre-labelling reads; the mix for a mono recording): Silero costs per signal.
    `on_block(seconds_done)` is called after each block (a benchmark samples memory there)."""
    path = Path(path)
    info, blocks = _blocks(path, block_s)
    rate, channels = int(info.samplerate), int(info.channels)
    signals = ["mix"] + (list(range(channels)) if channels > 1 else [])
    if silero_signals not in ("all", "mix", "channels"):
        raise ValueError(f"silero_signals must be 'all', 'mix' or 'channels', not {silero_signals!r}")
    heard = [s for s in signals if silero_signals == "all" or (s == "mix") == (silero_signals == "mix")
             or channels == 1]
    energy_vads = {s: StreamingEnergyVAD(rate, *ENERGY_DEFAULTS) for s in signals}
    silero = StreamingSilero(rate, len(heard))
    energy_out = {s: ([], []) for s in signals}
    silero_times, silero_probs = [], []
    stream = model.stream() if model is not None else None
    horizons = tuple(model.cfg.eot_horizons_s) if model is not None else ()
    step_times, step_probs = [], []  # this block's steps, as Python numbers
    step_blocks = []  # every earlier block's steps as arrays (times, probabilities): a few bytes a number
    words: dict[tuple[str, float], Word] = {}

    def take(events):
        for e in events:
            if isinstance(e, Step):
                step_times.append(e.time_s)
                step_probs.append([e.p_eot.get(h, np.nan) for h in horizons])
            elif isinstance(e, Word):
                words[(e.text, e.start_s)] = e
            elif isinstance(e, WordEnd) and (e.text, e.start_s) in words:
                words[(e.text, e.start_s)] = replace(words[(e.text, e.start_s)], end_s=e.end_s)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(info.duration, 1), unit="s", desc=path.name)
    done = 0.0
    try:
        for block in blocks:
            mix = block.mean(1) if channels > 1 else block[:, 0]
            per_signal = [mix] + [block[:, c] for c in range(channels)] if channels > 1 else [mix]
            for s, x in zip(signals, per_signal):
                t, speech = energy_vads[s].push(x)
                energy_out[s][0].append(t)
                energy_out[s][1].append(speech)
            t, p = silero.push(np.stack([x for s, x in zip(signals, per_signal) if s in heard]))
            silero_times.append(t)
            silero_probs.append(p)
            if stream is not None:
                take(stream.feed(mix, rate))
                step_blocks.append(_packed(step_times, step_probs, len(horizons)))
                step_times.clear()
                step_probs.clear()
            seconds = len(block) / rate
            done += seconds
            if bar is not None:
                bar.update(round(seconds, 1))
            if on_block is not None:
                on_block(done)
        if stream is not None:
            take(stream.flush())
            step_blocks.append(_packed(step_times, step_probs, len(horizons)))
    finally:
        if bar is not None:
            bar.close()
    times_s = np.concatenate([t for t, _ in step_blocks]) if step_blocks else np.zeros(0)
    probs = np.concatenate([p for _, p in step_blocks]) if step_blocks else np.zeros((0, len(horizons)), np.float32)
    steps = pd.DataFrame({"time_s": times_s, **{eot_column(h): probs[:, i].astype(float)
                                                for i, h in enumerate(horizons)}})
    times = np.concatenate(silero_times) if silero_times else np.zeros(0)
    all_probs = np.concatenate(silero_probs, axis=1) if silero_probs else np.zeros((len(heard), 0))
    return RecordingPass(
        path.stem, rate, channels, info.frames / rate, sorted(words.values(), key=lambda w: w.start_s), steps,
        energy={s: (np.concatenate(energy_out[s][0]), np.concatenate(energy_out[s][1])) for s in signals},
        silero={s: (times, all_probs[i]) for i, s in enumerate(heard)})


def _packed(times: list[float], probs: list[list[float]], n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """One block's steps as arrays: times (float64, exact) and probabilities (steps x heads, float32)."""
    return np.array(times, float), np.asarray(probs, np.float32).reshape(len(times), n_heads)
