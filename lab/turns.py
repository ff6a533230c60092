"""End-of-turn decisions: from per-step probabilities (semantic VAD) or from audio energy (silence baseline).

Every policy maps a stream's history to decision times (seconds of stream time); lab.metrics judges them.
"""

from __future__ import annotations

import numpy as np

from .metrics import crossings


def threshold_decisions(times_s, p_eot, threshold: float, start_s: float = 0.0) -> list[float]:
    """Semantic VAD, simplest policy: a decision whenever one head's probability rises above `threshold`.

    Decisions before `start_s` (before the speaker started) are ignored.
    """
    return crossings(times_s, p_eot, threshold, start_s)


def energy_vad(audio: np.ndarray, sample_rate: int, frame_s: float = 0.02, floor_db: float = -50.0,
               relative_db: float = -30.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame-level speech/silence from energy: speech where the frame level is above both an absolute floor
    and `relative_db` below the loudest frame. Returns (frame end times in s, is_speech)."""
    n = int(round(frame_s * sample_rate))
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    level_db = 10 * np.log10((frames.astype(np.float64) ** 2).mean(1) + 1e-12)
    threshold = max(floor_db, level_db.max() + relative_db) if len(level_db) else floor_db
    return (np.arange(len(frames)) + 1) * frame_s, level_db > threshold


def silence_decisions(times_s, is_speech, min_silence_s: float, start_s: float = 0.0) -> list[float]:
    """Silence-duration baseline: a decision when `min_silence_s` of silence has followed speech."""
    times_s, is_speech = np.asarray(times_s), np.asarray(is_speech, dtype=bool)
    decisions, last_speech, fired = [], None, True
    for t, speech in zip(times_s, is_speech):
        if speech:
            last_speech, fired = t, False
        elif last_speech is not None and not fired and t - last_speech >= min_silence_s - 1e-9:
            if t >= start_s:
                decisions.append(float(t))
            fired = True
    return decisions
