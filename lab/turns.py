"""End-of-turn decisions: when has the speaker finished? Semantic VAD policies and the baselines they replace.

Every policy answers the same question the same way: `policy.decide(trace) -> [decision times, s]`, where a
`Trace` is what a voice agent could have seen of one stream: the model's step times, the end-of-turn
probability of each head at each step, and the audio (for the acoustic baselines). Policies are frozen
dataclasses whose fields are all their parameters; `lab.metrics` judges their decisions and
`lab.evaluate.sweep` sweeps one parameter to draw a trade-off curve.

    semantic (kind "semantic"): ThresholdPolicy   one head above a threshold (Kyutai's examples: 2 s head > 0.5)
                                EMAPolicy         the same on an exponential moving average (attack/release)
                                UnmutePolicy      Kyutai Unmute's: the EMA of the 2 s head above 0.6 while the
                                                  user speaks, re-armed by the first word of a new turn
                                HysteresisPolicy  ours: pause above 0.6 on the EMA, speech again below 0.4
                                VetoedSilencePolicy  a silence timer that waits while the head disagrees
    silence  (kind "silence"):  SilencePolicy     a silence of `min_silence_s` after speech (energy VAD, ours)
    acoustic (kind "acoustic"): SileroPolicy      Silero VAD's end of speech after `min_silence_duration_ms`
                                                  (in lab/silero.py, importable from here)

A decision fires once, then the policy must see speech again (re-arm) before it can fire again; none fires
before the policy has seen speech at all, so a silence before the first word is never an end of turn.
UnmutePolicy re-arms as Unmute does, on a word; it reads the trace's word times (`Trace.word_times_s`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np

from .config import FRAME_RATE
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

    Re-armed when the probability falls back below it; lab.live_turns.ThresholdEndOfTurn decides the same live."""

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


def unmute_decisions(times_s, p, word_times_s, threshold: float = 0.6, attack_s: float = 0.01,
                     release_s: float = 0.01, warmup_steps: int = 12, initial: float = 1.0, flush_s: float = 0.5,
                     barge_in_below: float = 0.4, uninterruptible_s: float = 3.0) -> tuple[list[float], list[float]]:
    """Unmute's turn-taking on one user stream (unmute/unmute_handler.py, unmute/stt/speech_to_text.py):
    (end-of-turn decisions, barge-ins), in stream seconds.

    Per step, in Unmute's order: the step's probability updates the EMA (the first `warmup_steps` steps are
    skipped: the EMA keeps `initial`); a word delivered at this step that opens a new user message (the bot
    had the turn, or nobody had) forces the EMA to 0 and hands the turn to the user; then, checking as audio
    comes in: while the user has the turn and no flush runs, EMA > `threshold` is an end of turn, and a flush
    of `flush_s` stream seconds starts (its words still belong to the user's message); when the flush is
    over the bot has the turn; while the bot has it, EMA < `barge_in_below` after `uninterruptible_s` of
    audio is a barge-in (the bot stops; the turn is nobody's until the next word).
    """
    t, p = np.asarray(times_s, float), np.asarray(p, float)
    words = np.sort(np.asarray([] if word_times_s is None else word_times_s, float))
    dt = 1 / FRAME_RATE  # Unmute's FRAME_TIME_SEC, whatever the steps' timing
    turn, flush_until, v, w = "nobody", None, float(initial), 0
    decisions, barge_ins = [], []
    for k, (tk, pk) in enumerate(zip(t, p)):
        if k >= warmup_steps:
            half_life = attack_s if pk > v else release_s
            v += (1 - 2 ** (-dt / half_life)) * (pk - v)
        while w < len(words) and words[w] <= tk + 1e-9:
            w += 1
            if turn != "user":  # the first word of a new user message
                turn, v = "user", 0.0
        if flush_until is not None:
            if tk > flush_until + 1e-9:
                flush_until, turn = None, "bot"
        elif turn == "user" and v > threshold:
            decisions.append(float(tk))
            flush_until = tk + flush_s
        elif turn == "bot" and v < barge_in_below and tk > uninterruptible_s:
            barge_ins.append(float(tk))
            turn = "nobody"
    return decisions, barge_ins


@dataclass(frozen=True)
class UnmutePolicy:
    """Kyutai Unmute's end of turn, as its code does it (`unmute_decisions`): the 2 s head's EMA above 0.6,
    checked only while the user has the turn; the turn is the user's from the first word of a new message
    (which also forces the EMA to 0) until a decision and its flush; the first 12 steps are ignored. Its
    "< 0.4" is not a re-arming level but the barge-in test while the bot speaks (`barge_ins`)."""

    horizon_s: float = 2.0  # Unmute reads prs[2], the 2 s head
    threshold: float = 0.6
    attack_s: float = 0.01
    release_s: float = 0.01
    warmup_steps: int = 12
    initial: float = 1.0
    flush_s: float = 0.5  # Unmute's STT_DELAY_SEC: how long (stream time) its flush runs
    kind: ClassVar[str] = "semantic"
    sweep_param: ClassVar[str] = "threshold"
    sweep_values: ClassVar[tuple] = ThresholdPolicy.sweep_values

    @property
    def name(self) -> str:
        return f"unmute {eot_column(self.horizon_s)}"

    def _run(self, trace: Trace) -> tuple[list[float], list[float]]:
        if trace.word_times_s is None:
            raise ValueError(f"{self.name} re-arms on words: trace {trace.name!r} has no word_times_s "
                             "(Trace.from_steps(..., words=transcript.words))")
        return unmute_decisions(trace.times_s, trace.head(self.horizon_s), trace.word_times_s, self.threshold,
                                self.attack_s, self.release_s, self.warmup_steps, self.initial, self.flush_s)

    def decide(self, trace: Trace) -> list[float]:
        return self._run(trace)[0]

    def barge_ins(self, trace: Trace) -> list[float]:
        """Where Unmute's voice detection would have stopped the bot (it assumes the bot spoke after each
        decision until the user's next word)."""
        return self._run(trace)[1]


@dataclass(frozen=True)
class HysteresisPolicy:
    """Our policy (not Unmute's, see UnmutePolicy): the EMA of the 2 s head above `pause_above` is a pause
    (end of turn); the speaker is speaking again only once it falls below `speech_below`, so a probability
    that hovers near one level cannot fire twice. The levels and the EMA borrow Unmute's numbers (0.6; 0.4 is
    Unmute's barge-in level, used there only while the bot speaks; half-lives 0.01 s, in effect no smoothing
    at 12.5 Hz), but Unmute re-arms on a word, not on the probability."""

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
    """The policies a lab session compares: a threshold on each head, the EMA, Unmute's policy, our
    hysteresis and the vetoed silence timer on the default head, then the silence and Silero baselines.
    Without heads: the baselines alone."""
    semantic = []
    if horizons:
        h = default_horizon(horizons)
        semantic = [*(ThresholdPolicy(x) for x in horizons), EMAPolicy(h), UnmutePolicy(h), HysteresisPolicy(h),
                    VetoedSilencePolicy(h)]
    return [*semantic, SilencePolicy(), SileroPolicy()]
