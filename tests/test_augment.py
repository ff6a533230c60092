"""Training augmentation (lab.augment) and the corpus side of training: held-out sentences, written targets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from lab import augment
from lab.augment import AugmentConfig, Augmenter

SR = 24_000


def clicks(times_s, seconds=3.0):
    x = np.zeros(int(seconds * SR))
    for t in times_s:
        x[int(t * SR)] = 1.0
    return x


def peaks(x, n):
    return np.sort(np.argsort(np.abs(x))[-n:]) / SR


def test_speed_moves_every_sample_by_the_factor():
    y = augment.speed(clicks([0.5, 1.5, 2.5]), 1.1)
    assert len(y) == pytest.approx(3.0 * SR / 1.1, abs=2)
    assert peaks(y, 3) == pytest.approx(np.array([0.5, 1.5, 2.5]) / 1.1, abs=2e-4)


def test_reverb_keeps_the_direct_path_where_it_was():
    rooms = augment.make_rooms(3, np.random.default_rng(0))
    for rir in rooms:
        assert rir[0] == 1.0 and 0.05 * SR < len(rir) <= 0.8 * SR
        y = augment.reverb(clicks([1.0]), rir)
        assert np.argmax(np.abs(y)) == SR  # the word does not move; its echo comes after
        assert np.abs(y[: SR]).max() < 1e-9  # nothing before it (FFT round-off aside)


def test_telephone_band_removes_what_a_phone_line_cannot_carry():
    t = np.arange(2 * SR) / SR
    low, high = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 6000 * t)
    assert np.std(augment.telephone(low)[SR // 2:]) > 0.5
    assert np.std(augment.telephone(high)[SR // 2:]) < 0.01


def test_frequency_mask_removes_a_band_and_time_mask_silences_stretches():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SR)
    y = augment.freq_mask(x, rng, 1200.0)
    spec_x, spec_y = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(y))
    gone = spec_y < 1e-9 * spec_x.max()
    assert 100 / 12_000 * len(spec_x) * 0.5 < gone.sum() < 1200 / 12_000 * len(spec_x) * 1.1
    z = augment.time_mask(x, rng, 0.04)
    assert 0.01 * SR <= (z == 0).sum() <= 2 * 0.04 * SR + 1


def test_augmenter_is_reproducible_keeps_level_and_scales_word_times():
    rng = np.random.default_rng(5)
    x = (np.sin(2 * np.pi * 200 * np.arange(2 * SR) / SR) * (rng.random(2 * SR) > 0.3)).astype(np.float32) * 0.1
    words = [("Set", 0.2, 0.5), ("timers.", 0.6, 1.2)]

    def run(seed):
        aug = Augmenter(AugmentConfig(p_speed=1.0, n_rooms=2), np.random.default_rng(seed),
                        pool=lambda r: x * 0.5)
        return [aug(x, words) for _ in range(8)]

    a, b = run(0), run(0)
    for (ya, wa), (yb, wb) in zip(a, b):
        assert np.array_equal(ya, yb) and wa == wb
        assert np.isfinite(ya).all() and ya.dtype == np.float32
        factor = len(x) / len(ya)
        assert 0.89 < factor < 1.11
        assert wa[1][2] == pytest.approx(1.2 / factor, rel=1e-3)  # times follow the speed change
        assert np.sqrt(np.mean(ya.astype(float) ** 2)) == pytest.approx(np.sqrt(np.mean(x.astype(float) ** 2)),
                                                                          rel=0.05)
    assert not np.array_equal(a[0][0], run(1)[0][0])


def _item(folder, name, sentences, written):
    audio = np.zeros(SR, dtype=np.int16)
    sf.write(folder / f"{name}.wav", audio, SR, subtype="PCM_16")
    words = [{"text": w.lower().strip(".?"), "written": w, "start": 0.1 + 0.2 * i, "end": 0.25 + 0.2 * i}
             for i, w in enumerate(written)]
    (folder / f"{name}.json").write_text(json.dumps({"audio": f"{name}.wav", "duration": 1.0, "words": words,
                                                     "sentences": sentences}))


def test_training_leaves_out_held_out_sentences_and_learns_the_written_form(tmp_path):
    from lab.train import corpus_sentences, load_corpus, sentence_key

    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    _item(train, "a", ["Pause the timer."], ["Pause", "the", "timer."])
    _item(train, "b", ["What time is it?"], ["What", "time", "is", "it?"])
    _item(test, "t", ["pause the timer"], ["Pause", "the", "timer."])
    assert sentence_key("What time is it?") == "what time is it"
    assert corpus_sentences(test) == {"pause the timer"}
    logs = []
    items = load_corpus(train, 10.0, holdout=(str(test),), log=logs.append)
    assert [[w for w, _, _ in it.words] for it in items] == [["What", "time", "is", "it?"]]
    assert "left out 1 training items" in logs[0]
    assert len(load_corpus(train, 10.0)) == 2
