"""Synthetic speech corpus for streaming STT: espeak-ng turns with exact word timings.

Each item is one user *turn* (one to three sentences from ``grammar``) spoken by an espeak-ng
voice, with word start/end times, mid-turn pauses (at points where the sentence is plainly
unfinished) and the end-of-turn silence, written as ``NAME.wav`` (24 kHz mono int16) and
``NAME.json``. Same seed, same corpus, byte for byte.

    from lab import synth
    paths = synth.generate_corpus("corpus/train", n=2000, seed=0, exclude_voices=[synth.HELDOUT_VOICE])
    audio, meta = synth.synthesize_turn(1234)        # in memory, e.g. on the fly in a trainer
    audio, meta = synth.load_item(paths[0])          # read back, checked against its JSON
    audio, meta = synth.synthesize_text("set a timer for | five minutes")  # a given text, clean
"""

from . import grammar
from .corpus import cli_main, generate_corpus, item_seed, load_item, write_item
from .turn import HELDOUT_VOICE, SAMPLE_RATE, VOICES, synthesize_text, synthesize_turn

__all__ = [
    "HELDOUT_VOICE",
    "SAMPLE_RATE",
    "VOICES",
    "cli_main",
    "generate_corpus",
    "grammar",
    "item_seed",
    "load_item",
    "synthesize_text",
    "synthesize_turn",
    "write_item",
]
