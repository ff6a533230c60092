"""End-of-turn decisions: when has the speaker finished? Semantic VAD policies and the baselines they replace.

Every policy answers the same question the same way: `policy.decide(trace) -> [decision times, s]`, where a
`Trace` is what a voice agent could have seen of one stream: the model's step times, the end-of-turn
probability of each head at each step, and the audio (for the acoustic baselines). Policies are frozen
dataclasses whose fields are all their parameters; `lab.metrics` judges their decisions and
`lab.evaluate.sweep` sweeps one parameter to draw a trade-off curve.

    semantic (kind "semantic"): ThresholdPolicy   one head above a threshold (Kyutai's examples: 2 s head > 0.5)
                                EMAPolicy         the same on an exponential moving average (attack/release)
                                HysteresisPolicy  Unmute's: pause above 0.6 on the EMA, speech again below 0.4
                                VetoedSilencePolicy  a silence timer that waits while the head disagrees
    silence  (kind "silence"):  SilencePolicy     a silence of `min_silence_s` after speech (energy VAD, ours)
    acoustic (kind "acoustic"): SileroPolicy      Silero VAD's end of speech after `min_silence_duration_ms`
                                                  (in lab/silero.py, importable from here)

A decision fires once, then the policy must see speech again (re-arm) before it can fire again; none fires
before the policy has seen speech at all, so a silence before the first word is never an end of turn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np

from .events import eot_column
from .silero import SileroPolicy, silero_end_decisions, silero_speech_probs  # noqa: F401 (the baseline, here too)
from .trace import NO_HEADS, Trace, default_horizon, ema  # noqa: F401 (what policies read, importable from here)

# ---------------------------------------------------------------------------------------- semantic VAD


def hysteresis_decisions(times_s, values, above: float, below: float, warmup_steps: int = 0) -> list[float]:
    """A decision when `values` goes above `above` while armed; armed again once it is below `below`.

    Starts disarmed (nobody has spoken yet) and ignores the first `warmup_steps` steps entirely, when the
    model has heard too little to say anything. With below == above this is a plain threshold.
    """
    decisions, armed = [], False
    for t, v in zip(np.asarray(times_s, float)[warmup_steps:], np.asarray(values, float)[warmup_steps:]):
        if v < below:
            armed = True
        elif armed and v > above:
            decisions.append(float(t))
            armed = False
    return decisions


@dataclass(frozen=True)
class ThresholdPolicy:
    """Kyutai's example policy: end of turn when one head's probability rises above `threshold`.

    Re-armed when the probability falls back below it (the live Streamer's policy re-arms on a new word)."""

    horizon_s: float = 2.0  # which head: seconds of silence it predicts
    threshold: float = 0.5  # end of turn above this probability
    warmup_steps: int = 0  # steps at the start of a stream whose probabilities are ignored
    kind: ClassVar[str] = "semantic"
    sweep_param: ClassVar[str] = "threshold"
    sweep_values: ClassVar[tuple] = tuple(np.round(np.arange(0.05, 0.99, 0.025), 3))

    @property
    def name(self) -> str:
        return f"threshold {eot_column(self.horizon_s)}"

    def decide(self, trace: Trace) -> list[float]:
        return hysteresis_decisions(trace.times_s, trace.head(self.horizon_s), self.threshold, self.threshold,
                                    self.warmup_steps)


@dataclass(frozen=True)
class EMAPolicy:
    """A threshold on an exponential moving average of one head: a slow attack ignores brief rises of the
    probability (a short hesitation), a fast release re-arms as soon as speech comes back."""

    horizon_s: float = 2.0
    threshold: float = 0.6
    attack_s: float = 0.16  # half-life while the probability rises (towards "pause"), seconds
    release_s: float = 0.04  # half-life while it falls (speech again), seconds
    warmup_steps: int = 12  # Unmute ignores the first 12 steps (0.96 s)
    initial: float = 1.0  # the average starts at "nobody is speaking", as in Unmute
    kind: ClassVar[str] = "semantic"
    sweep_param: ClassVar[str] = "threshold"
    sweep_values: ClassVar[tuple] = ThresholdPolicy.sweep_values

    @property
    def name(self) -> str:
        return f"ema {eot_column(self.horizon_s)} (attack {self.attack_s:g} s, release {self.release_s:g} s)"

    def decide(self, trace: Trace) -> list[float]:
        v = trace.smoothed(self.horizon_s, self.attack_s, self.release_s, self.initial)
        return hysteresis_decisions(trace.times_s, v, self.threshold, self.threshold, self.warmup_steps)


@dataclass(frozen=True)
class HysteresisPolicy:
    """Unmute's scheme: the EMA of the 2 s head above `pause_above` is a pause (end of turn); the speaker is
    speaking again only once it falls below `speech_below`, so a probability that hovers near one level
    cannot fire twice. Unmute's EMA half-lives are 0.01 s: in effect no smoothing at 12.5 Hz."""

    horizon_s: float = 2.0
    pause_above: float = 0.6
    speech_below: float = 0.4
    attack_s: float = 0.01
    release_s: float = 0.01
    warmup_steps: int = 12
    initial: float = 1.0
    kind: ClassVar[str] = "semantic"
    sweep_param: ClassVar[str] = "pause_above"
    sweep_values: ClassVar[tuple] = ThresholdPolicy.sweep_values

    @property
    def name(self) -> str:
        return f"hysteresis {eot_column(self.horizon_s)}"

    def with_value(self, value: float) -> HysteresisPolicy:
        """Sweeps move both levels together, keeping their gap (Unmute's 0.2), speech_below at least 0."""
        gap = self.pause_above - self.speech_below
        return replace(self, pause_above=float(value), speech_below=round(max(0.0, float(value) - gap), 6))

    def decide(self, trace: Trace) -> list[float]:
        v = trace.smoothed(self.horizon_s, self.attack_s, self.release_s, self.initial)
        return hysteresis_decisions(trace.times_s, v, self.pause_above, self.speech_below, self.warmup_steps)


# -------------------------------------------------------------------------------- silence after speech


def energy_vad(audio: np.ndarray, sample_rate: int, frame_s: float = 0.02, floor_db: float = -60.0,
               relative_db: float = -35.0, margin_db: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Causal frame-level speech/silence from energy, as a streaming agent could compute it.

    A frame is speech when its level is above all of: an absolute floor, `margin_db` above the quietest
    frame so far (the noise floor), and `relative_db` below the loudest frame so far. Only the past is
    used. Returns (frame end times in s, is_speech).
    """
    n = int(round(frame_s * sample_rate))
    frames = np.asarray(audio)[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    level_db = 10 * np.log10((frames**2).mean(1) + 1e-12)
    noise_db = np.minimum.accumulate(level_db) if len(level_db) else level_db
    peak_db = np.maximum.accumulate(level_db) if len(level_db) else level_db
    threshold = np.maximum(floor_db, np.maximum(noise_db + margin_db, peak_db + relative_db))
    return (np.arange(len(frames)) + 1) * frame_s, level_db > threshold


def long_silence(times_s, is_speech, min_silence_s: float) -> np.ndarray:
    """Per VAD frame: has at least `min_silence_s` of silence followed speech by the end of this frame?"""
    t, speech = np.asarray(times_s, float), np.asarray(is_speech, dtype=bool)
    last_speech = np.maximum.accumulate(np.where(speech, t, -np.inf)) if len(t) else t
    with np.errstate(invalid="ignore"):  # before any speech last_speech is -inf: never long enough
        return ~speech & np.isfinite(last_speech) & (t - last_speech >= min_silence_s - 1e-9)


def silence_decisions(times_s, is_speech, min_silence_s: float, start_s: float = 0.0) -> list[float]:
    """A decision at the first frame where `min_silence_s` of silence has followed speech, once per silence."""
    t = np.asarray(times_s, float)
    long_enough = long_silence(t, is_speech, min_silence_s)
    fire = long_enough & ~np.concatenate([[False], long_enough[:-1]])
    return [float(x) for x in t[fire] if x >= start_s]


@dataclass(frozen=True)
class SilencePolicy:
    """What most voice agents do: end of turn after `min_silence_s` of silence following speech."""

    min_silence_s: float = 0.5
    frame_s: float = 0.02  # energy VAD frame
    floor_db: float = -60.0
    relative_db: float = -35.0
    margin_db: float = 10.0
    kind: ClassVar[str] = "silence"
    sweep_param: ClassVar[str] = "min_silence_s"
    sweep_values: ClassVar[tuple] = tuple(np.round(np.arange(0.1, 2.55, 0.05), 3))

    @property
    def name(self) -> str:
        return "silence (energy VAD)"

    def speech(self, trace: Trace) -> tuple[np.ndarray, np.ndarray]:
        key = ("energy", self.frame_s, self.floor_db, self.relative_db, self.margin_db)
        if key not in trace.cache:
            if trace.audio is None:
                raise ValueError(f"{self.name} needs the trace's audio; trace {trace.name!r} has none")
            trace.cache[key] = energy_vad(trace.audio, trace.sample_rate, self.frame_s, self.floor_db,
                                          self.relative_db, self.margin_db)
        return trace.cache[key]

    def decide(self, trace: Trace) -> list[float]:
        return silence_decisions(*self.speech(trace), self.min_silence_s)


def vetoed_silence_decisions(vad_times_s, is_speech, step_times_s, p_eot, min_silence_s: float,
                             threshold: float) -> list[float]:
    """A decision at the first VAD frame where `min_silence_s` of silence has followed speech and the head's
    latest probability (the last model step at or before that frame: causal) is at least `threshold`; once
    per silence. While the head disagrees, the silence goes on without a decision."""
    t, speech = np.asarray(vad_times_s, float), np.asarray(is_speech, dtype=bool)
    if not len(t):
        return []
    long_enough = long_silence(t, speech, min_silence_s)
    latest = np.searchsorted(np.asarray(step_times_s, float), t + 1e-9, side="right") - 1
    p_now = np.where(latest >= 0, np.asarray(p_eot, float)[np.clip(latest, 0, None)], 0.0)
    silence_run = np.cumsum(speech)  # constant within one silence, new after each speech frame
    decisions, fired = [], set()
    for i in np.flatnonzero(long_enough & (p_now >= threshold)):
        if silence_run[i] not in fired:
            fired.add(silence_run[i])
            decisions.append(float(t[i]))
    return decisions


@dataclass(frozen=True)
class VetoedSilencePolicy:
    """A silence timer with a semantic veto: end of turn after `min_silence_s` of silence (the energy VAD of
    SilencePolicy), but only once the head agrees (probability >= `threshold`); inside an unfinished sentence
    it does not, and the timer waits. The timer sets the latency, the model takes away the cuts in
    mid-sentence pauses. Kind "semantic": what it adds to the silence baseline is the model's heads."""

    horizon_s: float = 2.0
    threshold: float = 0.5
    min_silence_s: float = 0.2
    kind: ClassVar[str] = "semantic"
    sweep_param: ClassVar[str] = "min_silence_s"
    sweep_values: ClassVar[tuple] = SilencePolicy.sweep_values

    @property
    def name(self) -> str:
        return f"silence vetoed by {eot_column(self.horizon_s)} < {self.threshold:g}"

    def decide(self, trace: Trace) -> list[float]:
        vad_times, speech = SilencePolicy().speech(trace)
        return vetoed_silence_decisions(vad_times, speech, trace.times_s, trace.head(self.horizon_s),
                                        self.min_silence_s, self.threshold)


# ------------------------------------------------------------------------------------- policy helpers


def params(policy) -> dict:
    """A policy's parameters by name (all its fields)."""
    return asdict(policy)


def with_value(policy, value):
    """The policy with its swept parameter set to `value`."""
    if hasattr(policy, "with_value"):
        return policy.with_value(value)
    return replace(policy, **{policy.sweep_param: type(getattr(policy, policy.sweep_param))(value)})


def default_policies(horizons) -> list:
    """The policies a lab session compares: a threshold on each head, the EMA, Unmute's hysteresis and the
    vetoed silence timer on the default head, then the silence and Silero baselines. Without heads: the
    baselines alone."""
    semantic = []
    if horizons:
        h = default_horizon(horizons)
        semantic = [*(ThresholdPolicy(x) for x in horizons), EMAPolicy(h), HysteresisPolicy(h),
                    VetoedSilencePolicy(h)]
    return [*semantic, SilencePolicy(), SileroPolicy()]
