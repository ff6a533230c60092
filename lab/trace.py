"""What an end-of-turn policy sees of one stream (a `Trace`), in a module of its own: the semantic policies
(lab.turns), the acoustic baseline (lab.silero) and the evaluation (lab.evaluate) all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import FRAME_RATE, SAMPLE_RATE

NO_HEADS = ("this model has no end-of-turn heads (cfg.eot_horizons_s is empty): the semantic policies need "
            "them; the silence and acoustic baselines (SilencePolicy, SileroPolicy) still work")


# ----------------------------------------------------------------------------------------------- traces


@dataclass
class Trace:
    """One stream as a policy sees it. Decisions are stream times in seconds, like `times_s`."""

    times_s: np.ndarray  # (T,) stream time at which each model step could run (Step.time_s)
    p_eot: dict[float, np.ndarray]  # horizon (s) -> (T,) probability that nobody speaks within the horizon
    audio: np.ndarray | None = None  # mono PCM the stream heard, for the acoustic baselines
    sample_rate: int = SAMPLE_RATE
    name: str = ""
    word_times_s: np.ndarray | None = None  # stream time at which each word was delivered (Word.emitted_s)
    cache: dict = field(default_factory=dict, repr=False)  # per-trace features, computed once for sweeps

    @classmethod
    def from_steps(cls, steps, audio=None, sample_rate: int = SAMPLE_RATE, name: str = "",
                   words=None) -> Trace:
        """From `Transcript.steps` (a DataFrame with time_s and p_eot_{h}s columns) and, for the policies that
        listen for words (Unmute's), `Transcript.words`; with `audio`, only the steps within it
        (transcribe's flush steps past the end are dropped)."""
        if audio is not None:  # steps past the audio are the flush's, not something a live stream sees
            steps = steps[steps["time_s"] <= len(audio) / sample_rate + 1e-6]
        heads = {float(c[len("p_eot_"):-1]): steps[c].to_numpy(float) for c in steps.columns
                 if c.startswith("p_eot_") and c.endswith("s")}
        word_times = None if words is None else np.array([w.emitted_s for w in words], float)
        return cls(steps["time_s"].to_numpy(float), heads, audio, sample_rate, name, word_times)

    @property
    def horizons(self) -> tuple[float, ...]:
        return tuple(sorted(self.p_eot))

    def head(self, horizon_s: float) -> np.ndarray:
        if not self.p_eot:
            raise ValueError(NO_HEADS)
        if horizon_s not in self.p_eot:
            raise ValueError(f"no end-of-turn head with horizon {horizon_s:g} s; this trace has "
                             f"{[f'{h:g} s' for h in self.horizons]}")
        return self.p_eot[horizon_s]

    def smoothed(self, horizon_s: float, attack_s: float, release_s: float, initial: float) -> np.ndarray:
        key = ("ema", horizon_s, attack_s, release_s, initial)
        if key not in self.cache:
            self.cache[key] = ema(self.head(horizon_s), self.times_s, attack_s, release_s, initial)
        return self.cache[key]


def default_horizon(horizons) -> float:
    """The head policies use unless told: 2 s (Kyutai's and Unmute's choice) if present, else the longest."""
    if not horizons:
        raise ValueError(NO_HEADS)
    return 2.0 if 2.0 in horizons else max(horizons)


def ema(values, times_s, attack_s: float, release_s: float, initial: float = 1.0) -> np.ndarray:
    """Exponential moving average with separate half-lives (seconds) for rising and falling values, as in
    Unmute: `attack_s` when the value goes up (towards "pause"), `release_s` when it comes down (speech).

    Each update moves a fraction 1 - 2**(-dt / half_life) of the way to the new value; a half-life of 0
    follows the values exactly.
    """
    values, times_s = np.asarray(values, float), np.asarray(times_s, float)
    dt = np.diff(times_s, prepend=times_s[0] - 1 / FRAME_RATE) if len(times_s) else times_s
    out, v = np.empty_like(values), float(initial)
    for i, (x, d) in enumerate(zip(values, dt)):
        half_life = attack_s if x > v else release_s
        alpha = 1.0 if half_life <= 0 else 1.0 - 2.0 ** (-d / half_life)
        v += alpha * (x - v)
        out[i] = v
    return out
