"""End-of-turn decisions inside a live stream: after every step, the Streamer asks its policy.

    s = model.stream()                                              # 2 s head > 0.5, as Kyutai's examples
    s = model.stream(end_of_turn=VetoedSilenceEndOfTurn())         # the turn lab's best: a silence timer
                                                                    # that the 2 s head may veto

A live policy sees what the offline policies of lab.turns see, one step at a time: the step's stream time,
each head's probability, whether a word was delivered at this step, and the 80 ms of 24 kHz audio the step consumed. It
returns the decisions it makes at this step as (time_s, p) pairs, and the Streamer turns each into an
`EndOfTurn` event. Each live policy decides what its offline twin decides on the same stream (tested), so a
threshold tuned in the turn lab is the threshold to use live; `live_policy(policy)` gives the twin of an
offline policy. The Streamer copies the policy given for each stream and resets the copy with the stream.

    offline (lab.turns)    live (here)
    ThresholdPolicy        ThresholdEndOfTurn
    EMAPolicy              EMAEndOfTurn
    UnmutePolicy           UnmuteEndOfTurn
    HysteresisPolicy       HysteresisEndOfTurn
    VetoedSilencePolicy    VetoedSilenceEndOfTurn
    SilencePolicy          SilenceEndOfTurn
    SileroPolicy           none: Silero's network runs over the recorded audio only (lab.silero)
"""

from __future__ import annotations

import math

import numpy as np

from .config import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE


class HysteresisEndOfTurn:
    """lab.turns.HysteresisPolicy, live: an exponential moving average of one head (half-life `attack_s` while
    it rises, `release_s` while it falls, starting at `initial`), a decision when it goes above `pause_above`
    while armed, armed again once it is below `speech_below`. Starts disarmed; the first `warmup_steps` steps
    only feed the average. The arithmetic is lab.trace.ema's and lab.turns.hysteresis_decisions', step by
    step, so the decisions are the offline ones (tested)."""

    def __init__(self, horizon_s: float = 2.0, pause_above: float = 0.6, speech_below: float = 0.4,
                 attack_s: float | None = 0.01, release_s: float | None = 0.01, warmup_steps: int = 12,
                 initial: float = 1.0):
        self.horizon_s, self.pause_above, self.speech_below = float(horizon_s), pause_above, speech_below
        self.attack_s, self.release_s, self.warmup_steps, self.initial = attack_s, release_s, warmup_steps, initial
        self.name = f"ema p_eot_{horizon_s:g}s > {pause_above:g}, re-armed < {speech_below:g}"
        self.reset()

    def reset(self):
        self.value, self.last_time_s, self.steps, self.armed = float(self.initial), None, 0, False

    def _smooth(self, time_s: float, x: float) -> float:
        if self.attack_s is None:  # no average at all: the head itself (ThresholdPolicy reads it raw)
            return x
        # The first step's interval as lab.trace.ema computes it (prepend times[0] - one frame), bit for bit.
        d = time_s - (time_s - 1 / FRAME_RATE) if self.last_time_s is None else time_s - self.last_time_s
        self.last_time_s = time_s
        half_life = self.attack_s if x > self.value else self.release_s
        alpha = 1.0 if half_life <= 0 else 1.0 - 2.0 ** (-d / half_life)
        self.value += alpha * (x - self.value)
        return self.value

    def update(self, time_s: float, p_eot: dict[float, float], new_word: bool, frame: np.ndarray) -> list:
        v = self._smooth(time_s, p_eot[self.horizon_s])
        self.steps += 1
        if self.steps <= self.warmup_steps:
            return []
        if v < self.speech_below:
            self.armed = True
        elif self.armed and v > self.pause_above:
            self.armed = False
            return [(time_s, v)]
        return []


class UnmuteEndOfTurn:
    """lab.turns.UnmutePolicy, live: Unmute's EMA of the 2 s head (steps past the warm-up, a fixed 80 ms
    interval), forced to 0 and the turn handed to the user by the first word of a new message; while the user
    has the turn and no flush runs, EMA > `threshold` is an end of turn and starts a flush of `flush_s`, after
    which the bot has the turn until a barge-in (EMA < `barge_in_below` after `uninterruptible_s`) or a word.
    lab.turns.unmute_decisions step by step: the same decisions (tested)."""

    def __init__(self, horizon_s: float = 2.0, threshold: float = 0.6, attack_s: float = 0.01,
                 release_s: float = 0.01, warmup_steps: int = 12, initial: float = 1.0, flush_s: float = 0.5,
                 barge_in_below: float = 0.4, uninterruptible_s: float = 3.0):
        self.horizon_s, self.threshold, self.attack_s, self.release_s = float(horizon_s), threshold, attack_s, release_s
        self.warmup_steps, self.initial, self.flush_s = warmup_steps, initial, flush_s
        self.barge_in_below, self.uninterruptible_s = barge_in_below, uninterruptible_s
        self.name = f"unmute p_eot_{horizon_s:g}s > {threshold:g}"
        self.reset()

    def reset(self):
        self.turn, self.flush_until, self.value, self.steps = "nobody", None, float(self.initial), 0

    def update(self, time_s: float, p_eot: dict[float, float], new_word: bool, frame: np.ndarray) -> list:
        p = p_eot[self.horizon_s]
        if self.steps >= self.warmup_steps:
            half_life = self.attack_s if p > self.value else self.release_s
            self.value += (1 - 2 ** (-(1 / FRAME_RATE) / half_life)) * (p - self.value)
        self.steps += 1
        if new_word and self.turn != "user":  # the first word of a new user message
            self.turn, self.value = "user", 0.0
        if self.flush_until is not None:
            if time_s > self.flush_until + 1e-9:
                self.flush_until, self.turn = None, "bot"
        elif self.turn == "user" and self.value > self.threshold:
            self.flush_until = time_s + self.flush_s
            return [(time_s, self.value)]
        elif self.turn == "bot" and self.value < self.barge_in_below and time_s > self.uninterruptible_s:
            self.turn = "nobody"
        return []


class EMAEndOfTurn(HysteresisEndOfTurn):
    """lab.turns.EMAPolicy, live: the moving average above `threshold`, re-armed below the same level."""

    def __init__(self, horizon_s: float = 2.0, threshold: float = 0.6, attack_s: float = 0.16,
                 release_s: float = 0.04, warmup_steps: int = 12, initial: float = 1.0):
        super().__init__(horizon_s, threshold, threshold, attack_s, release_s, warmup_steps, initial)
        self.threshold = threshold
        self.name = f"ema p_eot_{horizon_s:g}s > {threshold:g} (attack {attack_s:g} s, release {release_s:g} s)"


class ThresholdEndOfTurn(HysteresisEndOfTurn):
    """Kyutai's example policy: end of turn when one head's probability rises above a threshold.

    Fires once, then re-arms when the probability falls back below the threshold, as its offline twin
    lab.turns.ThresholdPolicy does (the same decisions on the same stream, tested).
    """

    def __init__(self, horizon_s: float = 2.0, threshold: float = 0.5, warmup_steps: int = 0):
        super().__init__(horizon_s, threshold, threshold, None, None, warmup_steps)
        self.threshold = threshold
        self.name = f"p_eot_{horizon_s:g}s > {threshold:g}"


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


class SilenceEndOfTurn(VetoedSilenceEndOfTurn):
    """lab.turns.SilencePolicy, live: end of turn after `min_silence_s` of silence following speech, once per
    silence; the energy VAD of VetoedSilenceEndOfTurn with no head to ask (it needs none)."""

    def __init__(self, min_silence_s: float = 0.5, vad_frame_s: float = 0.02, floor_db: float = -60.0,
                 relative_db: float = -35.0, margin_db: float = 10.0):
        super().__init__(2.0, 0.0, min_silence_s, vad_frame_s, floor_db, relative_db, margin_db)
        self.horizon_s = None  # reads no head: any model will do
        self.name = f"silence >= {min_silence_s:g} s"


def live_policy(policy):
    """The live twin of an offline policy of lab.turns, with the same parameters."""
    from . import turns

    p = policy
    if isinstance(p, turns.ThresholdPolicy):
        return ThresholdEndOfTurn(p.horizon_s, p.threshold, p.warmup_steps)
    if isinstance(p, turns.EMAPolicy):
        return EMAEndOfTurn(p.horizon_s, p.threshold, p.attack_s, p.release_s, p.warmup_steps, p.initial)
    if isinstance(p, turns.UnmutePolicy):
        return UnmuteEndOfTurn(p.horizon_s, p.threshold, p.attack_s, p.release_s, p.warmup_steps, p.initial,
                               p.flush_s)
    if isinstance(p, turns.HysteresisPolicy):
        return HysteresisEndOfTurn(p.horizon_s, p.pause_above, p.speech_below, p.attack_s, p.release_s,
                                   p.warmup_steps, p.initial)
    if isinstance(p, turns.VetoedSilencePolicy):
        return VetoedSilenceEndOfTurn(p.horizon_s, p.threshold, p.min_silence_s)
    if isinstance(p, turns.SilencePolicy):
        return SilenceEndOfTurn(p.min_silence_s, p.frame_s, p.floor_db, p.relative_db, p.margin_db)
    raise ValueError(f"{getattr(p, 'name', p)!r} has no live twin (Silero runs over recorded audio only); live "
                     "policies: ThresholdEndOfTurn, EMAEndOfTurn, UnmuteEndOfTurn, HysteresisEndOfTurn, "
                     "VetoedSilenceEndOfTurn, SilenceEndOfTurn")
