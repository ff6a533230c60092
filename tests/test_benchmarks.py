"""lab.benchmarks measures on speech, and a row measured on anything else says so: when no speech engine
runs, the audio is tones and every row made from it carries `audio` naming the substitution and its cause."""

from __future__ import annotations

import numpy as np
import pytest

import lab.synth
from lab import benchmarks
from lab.model import SAMPLE_RATE


def engine_missing(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("libespeak-ng.so.1 not found: apt install espeak-ng libespeak-ng1")

    monkeypatch.setattr(lab.synth, "synthesize_turn", fail)  # what lab.synth raises without the library


def test_speech_is_speech_when_the_engines_run():
    audio, what = benchmarks.speech(1.5, seed=3)
    assert what == benchmarks.SPEECH and audio.dtype == np.float32 and len(audio) == int(1.5 * SAMPLE_RATE)
    assert np.abs(audio).max() > 0.01


def test_tones_are_named_in_every_row(tiny_model, monkeypatch):
    engine_missing(monkeypatch)
    audio, what = benchmarks.speech(1.0)
    assert len(audio) == SAMPLE_RATE
    assert what.startswith("tones, not speech") and "libespeak-ng.so.1 not found" in what
    rows = benchmarks.flush(tiny_model, delays=(1,), trials=1, warm_s=1.0)
    rows += benchmarks.batch(tiny_model, sizes=(1,), steps=1, threads=1)
    rows.append(benchmarks.single_stream(tiny_model, seconds=1.0))
    assert [r["audio"] for r in rows] == [what] * 3


def test_a_speech_engine_bug_is_not_hidden_behind_tones(monkeypatch):
    """Only a missing engine falls back; a wrong voice or another bug in lab.synth is raised as itself."""
    def bug(*args, **kwargs):
        raise ValueError("espeak-ng has no voice 'en-xx'")

    monkeypatch.setattr(lab.synth, "synthesize_turn", bug)
    with pytest.raises(ValueError, match="no voice 'en-xx'"):
        benchmarks.speech(1.0)
