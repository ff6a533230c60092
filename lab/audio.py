"""Audio in: checking, downmixing and resampling PCM for the 24 kHz model, as a stream or as a file.

`StreamingResampler` is a polyphase windowed-sinc resampler (anti-aliased, like scipy's resample_poly)
that keeps its history between chunks, so that the same audio gives the same samples whatever the
chunking. Its group delay is compensated: output sample n is aligned with input time n / 24000.

Why not soxr's `ResampleStream`: it is more exact and faster, but it filters in blocks and holds back tens
of milliseconds of audio, which a streaming recogniser pays on every word; ours holds back only its filter's
half length (under 1 ms). The numbers: bench/resample.py, tabled in bench/README.md.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import firwin

MAX_SAMPLE_RATE = 384_000


def check_sample_rate(sample_rate, what: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise TypeError(f"{what} must be a number of Hz, got {type(sample_rate).__name__}")
    if not 0 < sample_rate <= MAX_SAMPLE_RATE or int(sample_rate) != sample_rate:
        raise ValueError(f"{what} must be a whole number of Hz in (0, {MAX_SAMPLE_RATE}], got {sample_rate}")
    return int(sample_rate)


def to_mono_float(chunk, what: str = "audio chunk") -> np.ndarray:
    """int16 / float32 / float64 PCM, mono (T,) or multi-channel (T, C) -> float64 mono (T,).

    Multi-channel arrays are (samples, channels) as soundfile and sounddevice give them; a (C, T) array
    with few rows and many columns is also understood. NaN or Inf raises before anything is consumed.
    """
    try:
        import torch
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(chunk)
    if a.dtype == np.int16:
        a = a.astype(np.float64) / 32768.0
    elif a.dtype == np.int32:
        a = a.astype(np.float64) / 2147483648.0
    elif a.dtype in (np.float32, np.float64):
        a = a.astype(np.float64)
    else:
        raise TypeError(f"{what}: expected int16, int32, float32 or float64 samples, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[0] <= 16 < a.shape[1]:
            a = a.T  # (channels, samples) -> (samples, channels)
        a = a.mean(axis=1)
    elif a.ndim != 1:
        raise ValueError(f"{what}: expected shape (samples,) or (samples, channels), got {a.shape}")
    if a.size and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ValueError(f"{what}: {bad} of {a.size} samples are NaN or Inf; the chunk was not consumed")
    return a


def load_audio(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Read a sound file, or the bytes of one (an upload, a network message) -> (float64 mono samples, sample
    rate). Errors name the file."""
    import io

    import soundfile as sf

    if isinstance(source, (bytes, bytearray, memoryview)):
        what, handle = f"audio bytes ({len(source)} bytes)", io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"audio file not found: {path}")
        what, handle = f"audio file {path}", str(path)
    try:
        data, rate = sf.read(handle, dtype="float64", always_2d=False)
    except Exception as e:
        raise ValueError(f"cannot decode {what}: {e}") from e
    return to_mono_float(data, what=what), int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int = 24_000) -> np.ndarray:
    """Resample a whole signal (the same filter as the streaming resampler)."""
    r = StreamingResampler(rate_in, rate_out)
    return np.concatenate([r.push(audio), r.drain()])[: round(len(audio) * rate_out / rate_in)]


class StreamingResampler:
    """Polyphase resampler by up / down = rate_out / rate_in, with state, for one stream."""

    def __init__(self, rate_in: int, rate_out: int = 24_000, half_width: int = 10):
        rate_in = check_sample_rate(rate_in, "StreamingResampler rate_in")
        rate_out = check_sample_rate(rate_out, "StreamingResampler rate_out")
        self.rate_in, self.rate_out = rate_in, rate_out
        g = gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        self.passthrough = self.up == self.down
        if self.passthrough:
            return
        # Half length a multiple of `down`, so the filter's group delay is a whole number of output samples.
        self.delay = -(-half_width * max(self.up, self.down) // self.down)  # output samples
        half = self.delay * self.down
        taps = firwin(2 * half + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0)) * self.up
        self.n_phase_taps = -(-len(taps) // self.up)
        padded = np.zeros(self.n_phase_taps * self.up)
        padded[: len(taps)] = taps
        self.phases = padded.reshape(self.n_phase_taps, self.up).T.copy()  # (up, K): phase p uses taps p + j*up
        self.reset()

    def reset(self):
        if self.passthrough:
            return
        self.history = np.zeros(self.n_phase_taps)  # inputs before the start are silence
        self.history_start = -self.n_phase_taps  # absolute index of history[0]
        self.received = 0  # input samples seen
        self.produced = 0  # output samples given

    def push(self, x: np.ndarray) -> np.ndarray:
        """Samples in (1-D, at rate_in) -> the output samples they complete. A bad chunk raises before
        anything is kept: NaN in the history would spoil every later output of the stream."""
        x = np.asarray(x)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{self!r}: expected a 1-D array of samples, got shape {x.shape} dtype {x.dtype}")
        if x.size and not np.isfinite(x).all():
            raise ValueError(f"{self!r}: {int((~np.isfinite(x)).sum())} of {x.size} samples are NaN or Inf; "
                             "the chunk was not consumed")
        if self.passthrough:
            return x
        self.history = np.concatenate([self.history, x])
        self.received += len(x)
        # Output n needs inputs up to floor((n + delay) * down / up), which must have arrived.
        last = (self.received * self.up - 1) // self.down - self.delay  # last computable output index
        n = np.arange(self.produced, max(last + 1, self.produced))
        if len(n) == 0:
            return np.zeros(0)
        m = (n + self.delay) * self.down
        newest, phase = m // self.up, m % self.up
        idx = newest[:, None] - np.arange(self.n_phase_taps)[None, :] - self.history_start  # (N, K)
        y = (self.history[idx] * self.phases[phase]).sum(axis=1)
        self.produced = int(n[-1]) + 1
        # Keep only what the next output can still need.
        next_oldest = ((self.produced + self.delay) * self.down) // self.up - self.n_phase_taps + 1
        drop = max(0, next_oldest - self.history_start)
        self.history, self.history_start = self.history[drop:], self.history_start + drop
        return y

    def drain(self) -> np.ndarray:
        """Push enough silence to bring out the outputs still held back by the filter's delay."""
        if self.passthrough:
            return np.zeros(0)
        return self.push(np.zeros(self.delay * self.down // self.up + self.n_phase_taps + 1))

    def __repr__(self):
        if self.passthrough:
            return f"StreamingResampler({self.rate_in} Hz, passthrough)"
        return (f"StreamingResampler({self.rate_in} -> {self.rate_out} Hz, {self.up}/{self.down}, "
                f"{self.n_phase_taps} taps per phase, received={self.received}, produced={self.produced})")
