"""Tests of the synthetic speech corpus (lab.synth): determinism, timing accuracy, pauses, I/O."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import soundfile as sf

from lab import synth
from lab.synth import grammar

SR = 24000


def _frames_rms(audio: np.ndarray, frame: int) -> np.ndarray:
    n = len(audio) // frame
    return np.sqrt(np.mean(audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))


def _sounding_region(audio: np.ndarray, db: float = 35.0) -> tuple[float, float]:
    """Independent of the aligner: first/last 5 ms frame within ``db`` of the loudest frame."""
    frame = SR // 200
    rms = _frames_rms(audio, frame)
    on = np.flatnonzero(rms > rms.max() * 10 ** (-db / 20))
    return on[0] * frame / SR, (on[-1] + 1) * frame / SR


def _rms(audio: np.ndarray, start: float, end: float) -> float:
    seg = audio[int(start * SR):int(end * SR)].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def _speech_rms(audio: np.ndarray, meta: dict) -> float:
    return float(np.sqrt(np.mean(np.concatenate(
        [audio[int(w["start"] * SR):int(w["end"] * SR)] for w in meta["words"]]).astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return synth.generate_corpus(out, 6, seed=11, workers=1, progress=False)


@pytest.fixture(scope="module")
def clean_turns():
    """A few hundred clean turns' metadata and audio (the timing and pause tests share them)."""
    return [synth.synthesize_turn(i, augment=False) for i in range(240)]


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_same_bytes_and_workers_do_not_matter(corpus, tmp_path):
    again = synth.generate_corpus(tmp_path / "again", 6, seed=11, workers=2, progress=False)
    assert [p.name for p in again] == [p.name for p in corpus]
    for a, b in zip(corpus, again):
        assert a.read_bytes() == b.read_bytes()
        assert a.with_suffix(".wav").read_bytes() == b.with_suffix(".wav").read_bytes()


def test_different_seed_differs(corpus, tmp_path):
    other = synth.generate_corpus(tmp_path / "other", 6, seed=12, workers=1, progress=False)
    texts = [json.loads(p.read_text())["text"] for p in other]
    assert texts != [json.loads(p.read_text())["text"] for p in corpus]
    assert other[0].with_suffix(".wav").read_bytes() != corpus[0].with_suffix(".wav").read_bytes()


def test_synthesis_does_not_depend_on_what_ran_before():
    # espeak-ng keeps hidden state between calls; the fork server must hide it.
    a1, m1 = synth.synthesize_turn(5)
    synth.synthesize_turn(6)
    synth.synthesize_text("something else entirely", voice="en+f2")
    a2, m2 = synth.synthesize_turn(5)
    assert m1 == m2 and m1["seed"] == 5
    assert np.array_equal(a1, a2)


def test_item_is_reproducible_from_its_own_seed(corpus):
    audio, meta = synth.load_item(corpus[2])
    again, meta2 = synth.synthesize_turn(meta["seed"])
    assert np.array_equal(audio, again)  # in-memory audio equals the WAV round trip exactly
    assert meta2["words"] == meta["words"] and meta["index"] == 2


# --- timing accuracy -----------------------------------------------------------------------------

@pytest.mark.parametrize("voice", ["en-us+m3", "en+m7", "en-us+f1"])
def test_single_word_timing_matches_sound(voice):
    for word in ["hello", "five", "stop", "timer", "seven", "please", "weather", "twelve"]:
        audio, meta = synth.synthesize_text(word, voice=voice)
        (w,) = meta["words"]
        on, off = _sounding_region(audio)
        assert abs(w["start"] - on) < 0.03, (voice, word, w, on)
        assert abs(w["end"] - off) < 0.03, (voice, word, w, off)


def test_echo_voice_word_start_exact_and_end_before_the_echo():
    # f2 adds a 10 % echo 140 ms later: the word ends where its direct sound ends.
    for word in ["hello", "pasta", "monday"]:
        audio, meta = synth.synthesize_text(word, voice="en+f2")
        (w,) = meta["words"]
        on, off = _sounding_region(audio)
        assert abs(w["start"] - on) < 0.03
        assert w["end"] <= off + 0.03
        assert _rms(audio, w["end"] + 0.005, w["end"] + 0.1) < 0.1 * _rms(audio, w["start"], w["end"])


def test_merged_word_groups_are_split():
    # espeak emits one word event for "in the"; each word still gets its own span.
    audio, meta = synth.synthesize_text("turn on the lights in the kitchen")
    words = meta["words"]
    assert [w["text"] for w in words] == "turn on the lights in the kitchen".split()
    for w in words:
        assert w["end"] - w["start"] >= 0.03, w
        assert _rms(audio, w["start"], w["end"]) > 0.1 * _speech_rms(audio, meta), w


def test_words_ordered_inside_audio_and_contain_speech(clean_turns):
    for audio, meta in clean_turns[:60]:
        words, duration = meta["words"], len(audio) / SR
        assert meta["text"] == " ".join(w["text"] for w in words)
        assert all(re.fullmatch(r"[a-z]+", w["text"]) for w in words)
        assert 0.1 <= words[0]["start"] and words[-1]["end"] < duration
        for a, b in zip(words, words[1:]):
            assert a["start"] < a["end"] <= b["start"] < b["end"]
        assert meta["turns"] == [{"start": words[0]["start"], "end": words[-1]["end"]}]
        speech = _speech_rms(audio, meta)
        for w in words:
            assert _rms(audio, w["start"], w["end"]) > 0.1 * speech, (meta["text"], w)
        # before the first word there is only silence (clean audio)
        assert _rms(audio, 0, words[0]["start"] - 0.012) < 1e-4


# --- pauses --------------------------------------------------------------------------------------

def test_mid_turn_pauses_are_silent_and_between_words_of_the_turn(clean_turns):
    n_mid = 0
    for audio, meta in clean_turns:
        words = meta["words"]
        ends = [w["end"] for w in words]
        sentence_ends = np.cumsum([len(s.split()) for s in meta["sentences"]])
        speech = _speech_rms(audio, meta)
        eot = [p for p in meta["pauses"] if p["kind"] == "end_of_turn"]
        assert eot == [{"start": words[-1]["end"], "end": meta["duration"], "kind": "end_of_turn"}]
        for p in meta["pauses"]:
            if p["kind"] != "mid_turn":
                continue
            n_mid += 1
            k = ends.index(p["start"]) + 1  # the pause follows word k-1 and precedes word k
            assert k < len(words) and words[k]["start"] == p["end"]
            assert k not in sentence_ends  # inside a sentence: at a point where it is unfinished
            assert 0.3 - 0.01 <= p["end"] - p["start"] <= 2.0 + 0.01
            # The whole pause is 40 dB under the words (10 ms faded edges hold sub-threshold
            # tails), and inside those edges the clean audio is digital silence.
            assert _rms(audio, p["start"], p["end"]) < 0.01 * speech
            assert np.abs(audio[int((p["start"] + 0.012) * SR):int((p["end"] - 0.012) * SR)]).max() < 1e-4
    assert n_mid > 40


def test_pauses_stay_well_below_speech_with_noise(corpus):
    for path in corpus:
        audio, meta = synth.load_item(path)
        speech = _speech_rms(audio, meta)
        for p in meta["pauses"]:
            # noise is drawn at 20-40 dB SNR: a pause is at least ~18 dB below the words
            assert _rms(audio, p["start"] + 0.02, p["end"] - 0.02) < 0.13 * speech


def test_pause_length_does_not_reveal_end_of_turn(clean_turns):
    def lengths(kind):
        return np.array([p["end"] - p["start"] for _, m in clean_turns
                         for p in m["pauses"] if p["kind"] == kind])

    mid, end = lengths("mid_turn"), lengths("end_of_turn")
    assert len(mid) > 40 and len(end) == len(clean_turns)
    assert mid.max() > np.median(end) and end.min() < np.median(mid)
    assert np.mean(mid > 1.0) > 0.3  # long hesitations are common, not a rare tail
    # The best single length threshold tells the two kinds apart barely better than chance.
    best = 0.0
    for t in np.linspace(0.3, 2.5, 45):
        best = max(best, 0.5 * (np.mean(mid < t) + np.mean(end >= t)))
    assert best < 0.75, best


# --- argument checking and reading back ----------------------------------------------------------

@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n_is_a_clear_error(tmp_path, n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        synth.generate_corpus(tmp_path, n, seed=0, progress=False)


def test_unwritable_out_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        synth.generate_corpus(blocker, 1, seed=0, progress=False)
    with pytest.raises(ValueError, match="not writable"):
        synth.generate_corpus(blocker / "sub", 1, seed=0, progress=False)


def test_voice_selection_and_hold_out(tmp_path):
    with pytest.raises(ValueError, match="no voices left"):
        synth.generate_corpus(tmp_path, 1, seed=0, voices=["en+f3"], exclude_voices=["en+f3"], progress=False)
    with pytest.raises(ValueError, match="no voice"):
        synth.synthesize_turn(0, voice="xx-nonexistent+m1")
    held = synth.HELDOUT_VOICE
    assert held in synth.VOICES and len(synth.VOICES) >= 20
    train_voices = [v for v in synth.VOICES if v != held]
    picked = {synth.synthesize_turn(random.Random(i), voices=train_voices)[1]["voice"] for i in range(12)}
    assert held not in picked and len(picked) > 5
    paths = synth.generate_corpus(tmp_path / "held", 2, seed=0, voices=[held], progress=False)
    assert all(json.loads(p.read_text())["voice"] == held for p in paths)


def test_load_item_detects_mismatch(corpus, tmp_path):
    audio, meta = synth.load_item(corpus[0])
    assert audio.dtype == np.float32 and meta["sample_rate"] == SR
    assert abs(len(audio) / SR - meta["duration"]) < 1e-3

    wrong_rate = tmp_path / "rate.json"
    wav = str(corpus[0].with_suffix(".wav"))
    wrong_rate.write_text(json.dumps({**meta, "audio": wav, "sample_rate": 16000}))
    with pytest.raises(ValueError, match=r"rate\.json.*16000"):
        synth.load_item(wrong_rate)

    short = tmp_path / "short.json"
    sf.write(tmp_path / "short.wav", audio[: len(audio) // 4], SR, subtype="PCM_16")
    short.write_text(json.dumps({**meta, "audio": "short.wav"}))
    with pytest.raises(ValueError, match=r"short\.json"):
        synth.load_item(short)

    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({**meta, "audio": "nowhere.wav"}))
    with pytest.raises(ValueError, match=r"missing\.json.*nowhere\.wav"):
        synth.load_item(missing)


def test_json_fields(corpus):
    meta = json.loads(corpus[1].read_text())
    assert meta["audio"] == corpus[1].with_suffix(".wav").name
    for key in ("sample_rate", "text", "words", "turns", "pauses", "voice", "seed"):
        assert key in meta
    info = sf.info(str(corpus[1].with_suffix(".wav")))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert {p["kind"] for p in meta["pauses"]} <= {"mid_turn", "end_of_turn"}


# --- grammar -------------------------------------------------------------------------------------

def test_grammar_vocabulary_and_texts():
    grammar.check_grammar()
    vocab = grammar.vocabulary()
    assert 300 <= len(vocab) <= 1000 and all(re.fullmatch(r"[a-z]+", w) for w in vocab)
    texts = grammar.sample_texts(300, seed=1)
    assert texts == grammar.sample_texts(300, seed=1) and texts != grammar.sample_texts(300, seed=2)
    assert {w for t in texts for w in t.split()} <= set(vocab)
    rng = random.Random(0)
    sentences = [grammar.sample_sentence(rng) for _ in range(500)]
    assert 0.5 < np.mean([bool(s.pause_points) for s in sentences]) < 0.95
    assert all(0 < p < len(s.words) for s in sentences for p in s.pause_points)


def test_check_grammar_catches_bad_rules(monkeypatch):
    monkeypatch.setitem(grammar.RULES, "timer_name", ["pasta", "{nonexistent}"])
    with pytest.raises(ValueError, match="unknown symbol"):
        grammar.check_grammar()
    monkeypatch.setitem(grammar.RULES, "timer_name", ["o'clock"])
    with pytest.raises(ValueError, match="non-word"):
        grammar.check_grammar()
