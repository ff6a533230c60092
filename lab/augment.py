"""Training augmentation, redrawn for every item of every batch: what makes a model trained on synthetic
speech hear other voices, rooms and microphones.

Each engine colours its spectrum its own way and speaks in a dry, noiseless room; real audio does not. So an
item is, with the probabilities of `AugmentConfig`:

* **speed-perturbed** (+-10 %, Ko et al. 2015): resampling changes tempo, pitch and formants together, the
  cheapest way to new speakers; word times scale with it;
* **reverberated** in a simulated room (image method, pyroomacoustics; rooms drawn once, from 0.15 to 0.8 s
  RT60), aligned on the direct path so that word times do not move;
* **coloured** as by a microphone (a random peaking filter and a spectral tilt) or cut to the **telephone band**
  (8 kHz sampling, 300-3400 Hz);
* mixed with **noise**: white or brown, or **babble** of other items of the corpus, at 5-30 dB SNR;
* **masked** as in SpecAugment (Park et al. 2019): a band of frequencies removed, short stretches of time
  silenced.

All of it runs in numpy/scipy on the item's waveform, so the model's frontend sees exactly what it will see
at inference. Level (gain) and a sub-frame shift are drawn in `lab.train.Batches`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

SAMPLE_RATE = 24_000


@dataclass
class AugmentConfig:
    p_speed: float = 0.6
    speed: tuple[float, float] = (0.9, 1.1)
    p_reverb: float = 0.3
    n_rooms: int = 48
    p_colour: float = 0.4
    p_telephone: float = 0.08
    p_noise: float = 0.7
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_babble: float = 0.15
    p_freq_mask: float = 0.3
    max_freq_mask_hz: float = 1200.0
    p_time_mask: float = 0.3
    max_time_mask_s: float = 0.04


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (and higher): polyphase resampling by a ratio close to 1/factor."""
    up, down = 100, int(round(100 * factor))
    return resample_poly(audio, up, down) if up != down else audio


def make_rooms(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` room impulse responses at 24 kHz, normalised to a unit direct path at index 0."""
    import pyroomacoustics as pra

    rirs = []
    while len(rirs) < n:
        dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(0.15, 0.8)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # a room that cannot reach this RT60
            continue
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 12))
        room.add_source(rng.uniform([0.5, 0.5, 1.0], dims - 0.5))
        room.add_microphone(rng.uniform([0.5, 0.5, 0.8], dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[peak:peak + int(0.8 * SAMPLE_RATE)]
        rirs.append(rir / rir[0])
    return rirs


def reverb(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    wet = fftconvolve(audio, rir)[: len(audio)]
    return wet * (np.sqrt(np.mean(audio**2)) / (np.sqrt(np.mean(wet**2)) + 1e-12))


def colour(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A microphone's colouring: one peaking band of +-8 dB somewhere in 200-6000 Hz, and a tilt."""
    f0 = np.exp(rng.uniform(np.log(200), np.log(6000)))
    gain = 10 ** (rng.uniform(-8, 8) / 20)
    w0 = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * rng.uniform(0.5, 2.0))
    a = np.sqrt(gain)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    sos = np.concatenate([b / den[0], den / den[0]])[None]
    out = sosfilt(sos, audio)
    tilt = rng.uniform(-0.6, 0.6)  # first-order tilt: > 0 brighter, < 0 duller
    out[1:] = out[1:] - tilt * out[:-1] if tilt > 0 else out[1:] + (-tilt) * 0.5 * out[:-1]
    return out


_PHONE = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")


def telephone(audio: np.ndarray) -> np.ndarray:
    narrow = sosfilt(_PHONE, resample_poly(audio, 1, 3))
    return resample_poly(narrow, 3, 1)[: len(audio)]


def freq_mask(audio: np.ndarray, rng: np.random.Generator, max_hz: float) -> np.ndarray:
    # Transform a copy zero-padded to a length the FFT handles fast (an item's own length may have a large
    # prime factor: ten times slower), then crop back: the same band stop.
    n = sp_fft.next_fast_len(len(audio), real=True)
    spec = sp_fft.rfft(audio, n=n)
    hz_per_bin = SAMPLE_RATE / 2 / (len(spec) - 1)
    width = rng.uniform(100, max_hz)
    lo = rng.uniform(100, 7000 - width)
    spec[int(lo / hz_per_bin): int((lo + width) / hz_per_bin)] = 0
    return sp_fft.irfft(spec, n=n)[: len(audio)]


def time_mask(audio: np.ndarray, rng: np.random.Generator, max_s: float) -> np.ndarray:
    out = audio.copy()
    for _ in range(rng.integers(1, 3)):
        n = int(rng.uniform(0.01, max_s) * SAMPLE_RATE)
        at = int(rng.integers(0, max(1, len(out) - n)))
        out[at:at + n] = 0
    return out


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n, dtype=np.float32)  # float32: half the time of float64, plenty for noise
    if rng.random() < 0.5:
        return white
    brown = np.cumsum(white)
    c = np.concatenate([[0.0], np.cumsum(brown)])
    k = 2400  # keep it from drifting: subtract a 100 ms moving average (a cumulative-sum window)
    lo, hi = np.clip(np.arange(n) - k // 2, 0, n), np.clip(np.arange(n) + k // 2, 0, n)
    return brown - (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


class Augmenter:
    """Applies `AugmentConfig` to one item at a time; `pool` gives other items' audio for babble."""

    def __init__(self, cfg: AugmentConfig, rng: np.random.Generator, pool=None):
        self.cfg, self.rng, self.pool = cfg, rng, pool
        self.rooms = make_rooms(cfg.n_rooms, rng) if cfg.p_reverb > 0 else []

    def __call__(self, audio: np.ndarray, words: list[tuple[str, float, float]]):
        """(float audio at 24 kHz, words with times) -> the augmented pair."""
        cfg, rng = self.cfg, self.rng
        x = audio.astype(np.float64)
        if rng.random() < cfg.p_speed:
            factor = round(100 * rng.uniform(*cfg.speed)) / 100  # the ratio `speed` can make exactly
            x = speed(x, factor)
            words = [(w, s / factor, e / factor) for w, s, e in words]
        level = np.sqrt(np.mean(x**2)) + 1e-9
        if self.rooms and rng.random() < cfg.p_reverb:
            x = reverb(x, self.rooms[rng.integers(len(self.rooms))])
        if rng.random() < cfg.p_colour:
            x = colour(x, rng)
        if rng.random() < cfg.p_telephone:
            x = telephone(x)
        if rng.random() < cfg.p_freq_mask:
            x = freq_mask(x, rng, cfg.max_freq_mask_hz)
        if rng.random() < cfg.p_time_mask:
            x = time_mask(x, rng, cfg.max_time_mask_s)
        speech_level = level * 3.0  # items are mostly silence: their speech is louder than their mean
        if self.pool is not None and rng.random() < cfg.p_babble:
            babble = np.zeros_like(x)
            for _ in range(rng.integers(2, 5)):
                other = self.pool(rng).astype(np.float64)
                at = int(rng.integers(0, max(1, len(other) - len(x)))) if len(other) > len(x) else 0
                seg = other[at:at + len(x)]
                babble[: len(seg)] += seg / (np.sqrt(np.mean(seg**2)) + 1e-9)
            x = x + babble / (np.sqrt(np.mean(babble**2)) + 1e-9) * speech_level * 10 ** (-rng.uniform(10, 25) / 20)
        if rng.random() < cfg.p_noise:
            n = noise(len(x), rng)
            x = x + n / (np.sqrt(np.mean(n**2)) + 1e-9) * speech_level * 10 ** (-rng.uniform(*cfg.snr_db) / 20)
        x *= level / (np.sqrt(np.mean(x**2)) + 1e-9)
        return x.astype(np.float32), words
