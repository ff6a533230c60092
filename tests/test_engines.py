"""Speech engines of the corpus (lab.synth.engines): every engine's word timings, voices, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from lab import synth
from lab.synth import engines, grammar, registry

SR = 24000
TEXT = "what time is it in | new york? set a timer for five minutes"
VOICES = ["en-us+m3", "festival:kal", "festival:ked", "festival:slt", "piper:joe", "freetts:kevin16"]


def _rms(audio, start, end):
    seg = audio[int(start * SR):int(end * SR)].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


@pytest.fixture(scope="module", params=VOICES)
def spoken(request):
    return request.param, *synth.synthesize_text(TEXT, voice=request.param)


def test_every_word_present_in_order_inside_the_audio(spoken):
    voice, audio, meta = spoken
    words = meta["words"]
    assert [w["text"] for w in words] == TEXT.replace("|", "").replace("?", "").split()
    assert meta["voice"] == voice and meta["engine"] == engines.split_voice(voice)[0]
    duration = len(audio) / SR
    for prev, w in zip([None, *words], words):
        assert 0 <= w["start"] < w["end"] <= duration
        assert prev is None or prev["end"] <= w["start"] + 1e-3, (voice, prev, w)


def test_words_carry_sound_and_the_pause_does_not(spoken):
    voice, audio, meta = spoken
    pause = next(p for p in meta["pauses"] if p["kind"] == "mid_turn")
    assert pause["end"] - pause["start"] == pytest.approx(0.8, abs=0.05)
    quiet = _rms(audio, pause["start"] + 0.05, pause["end"] - 0.05)
    speech = np.median([_rms(audio, w["start"], w["end"]) for w in meta["words"]])
    assert speech > 30 * max(quiet, 1e-6), voice
    # The turn ends where its last word ends: after it, silence to the end of the audio.
    assert _rms(audio, meta["words"][-1]["end"] + 0.05, len(audio) / SR) < speech / 30


def test_written_form_has_case_and_punctuation(spoken):
    _, _, meta = spoken
    written = [w["written"] for w in meta["words"]]
    assert written[:7] == ["What", "time", "is", "it", "in", "New", "York?"]
    assert written[7] == "Set" and written[-1] == "minutes."


def test_flite_is_refused_and_unknown_names_are_clear():
    with pytest.raises(ValueError, match="reserved for acceptance"):
        registry.get_engine("flite")
    with pytest.raises(ValueError, match="unknown speech engine 'mbrola'"):
        registry.get_engine("mbrola")
    with pytest.raises(engines.EngineUnavailable, match="festival has no voice 'rab'.*kal"):
        registry.check_voice("festival:rab")


def test_a_missing_engine_names_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(engines.EngineUnavailable, match="Debian package festival"):
        registry.check_voice("festival:slt")


def test_engine_voices_and_voice_pool():
    from lab.synth.corpus import resolve_voices

    pool = resolve_voices("espeak,festival,piper")
    assert "festival:slt" in pool and "piper:joe" in pool and "en+f3" in pool
    assert not any(v.startswith("freetts") for v in pool)
    assert resolve_voices(None) is None
    with pytest.raises(ValueError, match="reserved"):
        resolve_voices("espeak,flite")


def test_each_engine_is_drawn_as_often_as_espeak():
    import random

    from lab.synth.turn import pick_voice

    pool = synth.VOICES + ["festival:kal", "piper:joe"]
    rng = random.Random(0)
    drawn = [engines.split_voice(pick_voice(rng, pool))[0] for _ in range(3000)]
    for name in ("espeak", "festival", "piper"):
        assert abs(drawn.count(name) / 3000 - 1 / 3) < 0.04


def test_sentence_kinds():
    import random

    rng = random.Random(3)
    vocab = set(grammar.vocabulary())
    shuffles = [grammar.sample_sentence(rng, "shuffle") for _ in range(200)]
    assert all(s.kind == "shuffle" and not s.pause_points and set(s.words) <= vocab for s in shuffles)
    assert 0.1 < np.mean([s.question for s in shuffles]) < 0.4
    swaps = {grammar.sample_sentence(rng, "swap").text for _ in range(300)}
    plain = {grammar.sample_sentence(random.Random(i), "grammar").text for i in range(3000)}
    assert len(swaps - plain) > 100  # swaps make sentences the templates do not (151 of 300 here)
    kinds = [grammar.sample_sentence(rng).kind for _ in range(2000)]
    for kind, share in grammar.SENTENCE_MIX:
        assert abs(kinds.count(kind) / 2000 - share) < 0.05
    with pytest.raises(ValueError, match="unknown sentence kind"):
        grammar.sample_sentence(rng, "poetry")


def test_written_form_rules():
    assert grammar.written_form(["what", "time", "is", "it", "in", "new", "york"], True)[-2:] == ["New", "York?"]
    assert grammar.written_form(["call", "tom", "on", "monday"], False) == ["Call", "Tom", "on", "Monday."]
    assert grammar.written_form(["i", "am", "tired"], False) == ["I", "am", "tired."]
