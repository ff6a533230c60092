"""Pre-labelling a raw recording, and the one streaming pass under it: a two-channel call becomes an item
whose pauses carry proposed labels (a speaker change is a shift, a pause inside a sentence a hold); the
pass computes the energy VAD exactly as on the whole audio and Silero as closely; long items go through
the turn lab a block at a time and decide as the whole-audio path does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

import lab
from lab import evaluate, turns
from lab.cli import main
from lab.items import check_item, read_meta
from lab.prelabel import prelabel, shift_probability, speech_segments
from lab.recording_pass import stream_recording
from lab.widgets import tables


@pytest.fixture(scope="module")
def embedded_model():
    return lab.load()


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """A two-channel call: the user says "set a timer for ... five minutes." on channel 1, then the other
    speaker answers on channel 2 with the same clip (a stand-in voice), 0.8 s after the user's last word."""
    clip = tables.sample("timer")
    rate, a = clip.sample_rate, clip.audio
    end = int(clip.words[-1]["end"] * rate)
    gap = int(0.8 * rate)
    n = end + gap + len(a)
    noise = 1e-4 * np.random.default_rng(1).standard_normal((n, 2)).astype(np.float32)
    audio = noise.copy()
    audio[:end, 0] += a[:end]
    audio[end + gap:, 1] += a
    path = tmp_path_factory.mktemp("call") / "call.wav"
    sf.write(path, audio, rate)
    return path, clip


def test_the_pass_matches_the_whole_audio_features(call, embedded_model):
    path, clip = call
    rec = stream_recording(embedded_model, path, block_s=0.7)  # blocks that cut frames and chunks
    mix = sf.read(path, dtype="float32")[0].mean(1)
    times, speech = turns.energy_vad(mix, clip.sample_rate)
    assert np.array_equal(rec.energy["mix"][1], speech) and np.allclose(rec.energy["mix"][0], times)
    from lab.silero import silero_speech_probs

    _, probs = silero_speech_probs(mix, clip.sample_rate, cache=False)
    n = min(len(probs), len(rec.silero["mix"][1]))
    assert n >= len(probs) - 1 and np.abs(probs[:n] - rec.silero["mix"][1][:n]).max() < 0.1  # a shorter filter
    whole = embedded_model.transcribe((mix, clip.sample_rate))
    assert [w.text for w in rec.words] == [w.text for w in whole.words]
    assert len(rec.silero[0][1]) == len(rec.silero[1][1]) == len(rec.silero["mix"][1])


def test_prelabel_proposes_hold_in_the_sentence_and_shift_at_the_speaker_change(call, embedded_model, tmp_path):
    path, clip = call
    item = prelabel(embedded_model, path, tmp_path / "items", progress=False)
    assert check_item(item) == [] and (tmp_path / "items" / "call.wav").is_file()
    meta = read_meta(item)
    pauses = meta["pauses"]
    assert all(p["end"] - p["start"] >= 0.1 and 0.5 <= p["confidence"] <= 1 and not p["confirmed"] for p in pauses)
    mid = clip.meta["pauses"][0]  # "for ... five": the user's pause inside the sentence
    hold = [p for p in pauses if p["start"] < mid["end"] and p["end"] > mid["start"]]
    assert [p["label"] for p in hold] == ["hold"], pauses
    change = clip.words[-1]["end"] + 0.4
    shift = [p for p in pauses if p["start"] <= change <= p["end"]]
    assert [p["label"] for p in shift] == ["shift"] and "speaker changes" in shift[0]["reason"], pauses
    assert [t["speaker"] for t in meta["turns"]][:2] == ["channel 1", "channel 2"]
    assert {w["speaker"] for w in meta["words"]} == {"channel 1", "channel 2"}
    assert " ".join(w["text"] for w in meta["words"]).startswith("set a timer for five minutes")


def test_the_rules_move_the_probability_the_right_way():
    assert shift_probability(True, None, 0.3)[0] > 0.8
    assert shift_probability(False, False, 0.3)[0] < 0.2
    assert shift_probability(None, True, 2.0)[0] > shift_probability(None, True, 0.6)[0] > 0.5
    assert shift_probability(None, False, 0.6)[0] < 0.5
    assert speech_segments([0.032, 0.064, 0.096, 0.128], [0.1, 0.9, 0.4, 0.2]) == [(0.032, 0.096)]


def test_a_long_item_goes_through_the_turn_lab_a_block_at_a_time(call, embedded_model, tmp_path, monkeypatch,
                                                                   capsys):
    path, _ = call
    assert main(["prelabel", str(path), "--out", str(tmp_path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["label"] for r in rows} <= {"hold", "shift"}
    whole = evaluate.run_items(embedded_model, tmp_path, tail_s=0.0, tail="zeros")
    monkeypatch.setattr(evaluate, "LONG_ITEM_S", 1.0)  # every item is "long" now
    streamed = evaluate.run_items(embedded_model, tmp_path)
    assert streamed[0].trace.audio is None and whole[0].trace.audio is not None
    for policy in (turns.SilencePolicy(), turns.ThresholdPolicy(), turns.VetoedSilencePolicy()):
        assert policy.decide(streamed[0].trace) == policy.decide(whole[0].trace), policy.name
    silero = turns.SileroPolicy()
    assert len(silero.decide(streamed[0].trace)) == len(silero.decide(whole[0].trace))
    table = evaluate.sweep(streamed, turns.SilencePolicy())
    assert len(table) == len(turns.SilencePolicy.sweep_values) and table.turns.iloc[0] == len(streamed[0].turns)


def test_any_loaded_model_prelabels(call, tiny_model, tmp_path):
    """Not only the embedded model: any model lab.load gives (here a tiny random one) goes through the same
    stream; its words are noise, the pauses and their labels come all the same, and the item is valid."""
    path, _ = call
    item = prelabel(tiny_model, path, tmp_path, progress=False)
    meta = read_meta(item)
    assert check_item(item) == [] and meta["pauses"] and "prelabel" in json.loads(item.read_text())["source"]
