"""End-of-turn decisions inside a live stream: after every step, the Streamer asks its policy.

    s = model.stream()                                              # 2 s head > 0.5, as Kyutai's examples
    s = model.stream(end_of_turn=VetoedSilenceEndOfTurn())         # the turn lab's best: a silence timer
                                                                    # that the 2 s head may veto

A live policy sees what the offline policies of lab.turns see, one step at a time: the step's stream time,
each head's probability, whether a text piece came out, and the 80 ms of 24 kHz audio the step consumed. It
returns the decisions it makes at this step as (time_s, p) pairs, and the Streamer turns each into an
`EndOfTurn` event. Each live policy decides what its offline twin decides on the same stream (tested), so a
threshold tuned in the turn lab is the threshold to use live. The Streamer copies the policy given for each
stream and resets the copy with the stream.
"""

from __future__ import annotations

import math

import numpy as np

from .config import FRAME_SIZE, SAMPLE_RATE


class ThresholdEndOfTurn:
    """Kyutai's example policy: end of turn when one head's probability rises above a threshold.

    Fires once per turn: it re-arms only after a new text piece has come out (offline twin, up to re-arming:
    lab.turns.ThresholdPolicy).
    """

    def __init__(self, horizon_s: float = 2.0, threshold: float = 0.5):
        self.horizon_s, self.threshold = float(horizon_s), threshold
        self.name = f"p_eot_{horizon_s:g}s > {threshold:g}"
        self.armed = False

    def update(self, time_s: float, p_eot: dict[float, float], new_word: bool, frame: np.ndarray) -> list:
        if new_word:
            self.armed = True
        p = p_eot.get(self.horizon_s)
        if self.armed and p is not None and p > self.threshold:
            self.armed = False
            return [(time_s, p)]
        return []

    def reset(self):
        self.armed = False


class VetoedSilenceEndOfTurn:
    """lab.turns.VetoedSilencePolicy, live: end of turn after `min_silence_s` of silence following speech,
    once the head's probability is at least `threshold`; once per silence.

    The energy VAD is lab.turns.energy_vad computed frame by frame: 20 ms frames, speech when the level is
    above an absolute floor, `margin_db` above the quietest frame so far and `relative_db` below the
    loudest. A VAD frame that ends with the step is judged with this step's probability, the earlier ones
    with the previous step's, as the offline policy does (the latest step at or before the frame).
    """

    def __init__(self, horizon_s: float = 2.0, threshold: float = 0.7, min_silence_s: float = 0.45,
                 vad_frame_s: float = 0.02, floor_db: float = -60.0, relative_db: float = -35.0,
                 margin_db: float = 10.0):
        self.horizon_s, self.threshold, self.min_silence_s = float(horizon_s), threshold, min_silence_s
        self.vad_frame_s, self.floor_db = vad_frame_s, floor_db
        self.relative_db, self.margin_db = relative_db, margin_db
        n = vad_frame_s * SAMPLE_RATE
        if abs(n - round(n)) > 1e-9 or FRAME_SIZE % round(n):
            raise ValueError(f"vad_frame_s {vad_frame_s} must split an 80 ms frame into whole 24 kHz frames")
        self.vad_samples = round(n)
        self.name = f"silence >= {min_silence_s:g} s vetoed by p_eot_{horizon_s:g}s < {threshold:g}"
        self.reset()

    def reset(self):
        self.noise_db, self.peak_db = math.inf, -math.inf  # the quietest and loudest VAD frames so far
        self.last_speech_s: float | None = None  # end of the last speech frame
        self.fired = False  # already decided in this silence
        self.previous_p = 0.0  # the head at the previous step

    def update(self, time_s: float, p_eot: dict[float, float], new_word: bool, frame: np.ndarray) -> list:
        p_now = p_eot.get(self.horizon_s, 0.0)
        sub = np.asarray(frame, dtype=np.float64).reshape(-1, self.vad_samples)
        levels = 10 * np.log10((sub**2).mean(1) + 1e-12)
        start_s = time_s - len(levels) * self.vad_frame_s
        decisions = []
        for k, level in enumerate(levels):
            t = round(start_s + (k + 1) * self.vad_frame_s, 4)
            self.noise_db, self.peak_db = min(self.noise_db, level), max(self.peak_db, level)
            if level > max(self.floor_db, self.noise_db + self.margin_db, self.peak_db + self.relative_db):
                self.last_speech_s, self.fired = t, False
                continue
            p = p_now if t >= time_s - 1e-9 else self.previous_p
            if (not self.fired and self.last_speech_s is not None
                    and t - self.last_speech_s >= self.min_silence_s - 1e-9 and p >= self.threshold):
                self.fired = True
                decisions.append((t, p))
        self.previous_p = p_now
        return decisions
