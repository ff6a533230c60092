"""The loop of notebook 06 and bench/tts_loop.py: the toy text-to-speech model speaks a sentence it never
trained on, and a speech-to-text model writes down what it hears, next to two references on the same
sentence: espeak-ng itself (the voice the toy model learned) and espeak-ng's own spectra turned back into
sound by Griffin-Lim (what the vocoder alone costs)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics, tts
from .config import FRAME_RATE
from .train import sentence_key
from .tts_train import grammar_sentences, speak_sentence


def trained_sentences(folder: str | Path | None = None) -> set[str]:
    """The sentence keys the toy model was trained on (listed in its model folder)."""
    folder = Path(folder) if folder is not None else tts.default_folder()
    return set(json.loads((folder / "sentences.json").read_text()))


def held_out_sentences(n: int, seed: int = 4242, folder: str | Path | None = None) -> list:
    """`n` grammar sentences absent from the toy model's training set."""
    return grammar_sentences(n, seed, exclude=trained_sentences(folder))


@dataclass
class Heard:
    """One sentence through the loop."""

    sentence: str  # as written
    audio: dict[str, np.ndarray] = field(repr=False)  # "espeak", "vocoded", "toy_tts" -> 24 kHz audio
    frames: dict[str, np.ndarray] = field(repr=False)  # "espeak", "toy_tts" -> normalised log-mel frames
    text: dict[str, str]  # what the speech-to-text model wrote for each audio
    word_starts_s: dict[str, list[float]]  # "espeak": its word events; "toy_tts": the model's EPAD decisions
    complete: bool  # the toy model spoke every word
    words: list[tuple[str, float, float]] = field(default_factory=list)  # espeak-ng's (word, start_s, end_s)

    def wer(self, which: str = "toy_tts") -> float:
        return metrics.wer(self.sentence, self.text[which])


def listen(model: tts.ToyTTS, stt, sentence, n_iter: int = 32) -> Heard:
    """`sentence` (a grammar Sentence) spoken three ways, each transcribed by `stt`."""
    audio, words = speak_sentence(sentence, model.cfg.voice)
    frames = tts.log_mel(audio, model.cfg)
    spoken, out = model.speak(sentence.written_text, n_iter=n_iter)
    sounds = {"espeak": audio, "vocoded": tts.mel_to_audio(frames, model.cfg, n_iter=n_iter), "toy_tts": spoken}
    return Heard(sentence.written_text, sounds, {"espeak": frames, "toy_tts": out["frames"]},
                 {k: stt.transcribe((a, tts.SAMPLE_RATE)).text for k, a in sounds.items()},
                 {"espeak": [s for _, s, _ in words],
                  "toy_tts": [step / FRAME_RATE for step in out["word_start_steps"]]},
                 out["complete"], words)


def loop_table(model: tts.ToyTTS, stt, sentences, n_iter: int = 32):
    """A DataFrame: each sentence, what was heard from each audio, and the WER of each."""
    import pandas as pd

    rows = []
    for s in sentences:
        h = listen(model, stt, s, n_iter)
        rows.append({"sentence": h.sentence, "heard (toy TTS)": h.text["toy_tts"],
                     **{f"WER {k}": round(h.wer(k), 3) for k in ("espeak", "vocoded", "toy_tts")}})
    return pd.DataFrame(rows)


def overlap(sentences, folder: str | Path | None = None) -> int:
    trained = trained_sentences(folder)
    return sum(sentence_key(s.text) in trained for s in sentences)
