"""The acoustic baseline of the turn lab: Silero VAD's end of speech, run as a stream would run it.

Silero hears *that* someone stopped speaking, not *what* they said: the baseline the semantic policies of
lab.turns are measured against. Its probabilities are computed once per audio and kept on disk.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from .trace import Trace

SILERO_RATE, SILERO_CHUNK = 16_000, 512  # Silero's input: 32 ms chunks at 16 kHz


@lru_cache(maxsize=1)
def _silero_model():
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # importing it sets torch's threads to 1 for the whole process

    model = load_silero_vad()  # the TorchScript weights shipped in the package: offline, CPU
    torch.set_num_threads(threads)
    return model


def _cache_dir() -> Path:
    return Path(os.environ.get("DSM_LAB_CACHE") or Path.home() / ".cache" / "dsm-lab") / "silero"


def silero_speech_probs(audio: np.ndarray, sample_rate: int, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Silero's speech probability for each 32 ms chunk, run as a stream would (state carried over).

    Returns (chunk end times in s, probabilities). Audio is resampled to 16 kHz with lab.audio.resample.
    Results are kept on disk (under $DSM_LAB_CACHE, default ~/.cache/dsm-lab), keyed by the audio's bytes.
    """
    import silero_vad
    import torch

    from .audio import resample

    x = np.asarray(audio, dtype=np.float32)
    key = hashlib.sha1(f"{sample_rate}:{silero_vad.__version__}:".encode() + x.tobytes()).hexdigest()
    path = _cache_dir() / f"{key}.npy"
    if cache and path.is_file():
        probs = np.load(path)
    else:
        x16 = resample(x.astype(np.float64), sample_rate, SILERO_RATE) if sample_rate != SILERO_RATE else x
        x16 = np.ascontiguousarray(x16[: len(x16) // SILERO_CHUNK * SILERO_CHUNK], np.float32)
        probs = np.zeros(0, np.float32)
        if len(x16):
            model = _silero_model()
            model.reset_states()
            with torch.no_grad():
                probs = model.audio_forward(torch.from_numpy(x16), SILERO_RATE)[0].numpy().astype(np.float32)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, probs)
    return (np.arange(len(probs)) + 1) * SILERO_CHUNK / SILERO_RATE, probs


def silero_end_decisions(times_s, probs, min_silence_s: float, threshold: float = 0.5,
                         neg_threshold: float | None = None) -> list[float]:
    """Silero's streaming rule (its VADIterator): speech starts at a chunk >= `threshold`; after speech, the
    first chunk below `neg_threshold` (threshold - 0.15) starts a silence, a chunk >= threshold cancels it,
    and once the silence has lasted `min_silence_s` (counted from the end of its first chunk) speech ends:
    that chunk's end time is the decision."""
    neg = threshold - 0.15 if neg_threshold is None else neg_threshold
    decisions, triggered, silence_from = [], False, None
    for t, p in zip(np.asarray(times_s, float), np.asarray(probs, float)):
        if p >= threshold:
            triggered, silence_from = True, None
        elif p < neg and triggered:
            silence_from = t if silence_from is None else silence_from
            if t - silence_from >= min_silence_s - 1e-9:
                decisions.append(float(t))
                triggered, silence_from = False, None
    return decisions


@dataclass(frozen=True)
class SileroPolicy:
    """Silero VAD's end of speech: the acoustic baseline, with `min_silence_duration_ms` swept."""

    min_silence_duration_ms: float = 100.0  # Silero's default
    threshold: float = 0.5
    kind: ClassVar[str] = "acoustic"
    sweep_param: ClassVar[str] = "min_silence_duration_ms"
    sweep_values: ClassVar[tuple] = tuple(float(v) for v in range(50, 2501, 50))

    @property
    def name(self) -> str:
        return "silero vad"

    def probs(self, trace: Trace) -> tuple[np.ndarray, np.ndarray]:
        if "silero" not in trace.cache:
            if trace.audio is None:
                raise ValueError(f"{self.name} needs the trace's audio; trace {trace.name!r} has none")
            trace.cache["silero"] = silero_speech_probs(trace.audio, trace.sample_rate)
        return trace.cache["silero"]

    def decide(self, trace: Trace) -> list[float]:
        return silero_end_decisions(*self.probs(trace), self.min_silence_duration_ms / 1000, self.threshold)
