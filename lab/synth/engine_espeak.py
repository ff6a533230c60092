"""espeak-ng as an engine: the library through ctypes (`espeak.py`), word spans from its phoneme events."""

from __future__ import annotations

from .align import align_words
from .engines import Engine, EngineUnavailable, Spoken, Style
from .espeak import ESPEAK_RATE, Prosody, synthesize

_BASES = ("en-us", "en")  # "en" is British English (espeak's gmw/en, language en-gb)
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
ESPEAK_VOICES: tuple[str, ...] = tuple(f"{b}+{v}" for b in _BASES for v in _VARIANTS) + (
    "en-gb-scotland+m3", "en-029+f2", "en-us-nyc+m6", "en-gb-x-rp+f1",
)
BASE_WPM = 175


class EspeakEngine(Engine):
    name = "espeak"
    voices = ESPEAK_VOICES
    rate = ESPEAK_RATE

    def check(self, voice: str) -> None:
        # Any voice espeak-ng knows is accepted (the list above is what the corpus draws from);
        # an unknown one fails in the library with a message naming it.
        if not voice:
            raise EngineUnavailable("espeak: empty voice name")

    def speak(self, voice: str, style: Style, texts: list[str], words: list[list[str]]) -> list[Spoken]:
        prosody = Prosody(voice, round(BASE_WPM * style.speed), round(100 * style.pitch),
                          round(100 * style.pitch_range))
        return [Spoken(raw.pcm.astype("float64"), ESPEAK_RATE, align_words(raw, text, ws, ESPEAK_RATE))
                for raw, text, ws in zip(synthesize(prosody, texts), texts, words)]
