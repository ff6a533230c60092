"""Live end-of-turn policies decide inside the stream what their offline twins in lab.turns decide on the
recorded trace: the threshold a user tunes in the turn lab is the threshold to use live."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lab
from lab import synth, turns
from lab.events import EndOfTurn, Step, Word
from lab.live_turns import ThresholdEndOfTurn, VetoedSilenceEndOfTurn


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return lab.load()  # the embedded model: real heads that know an unfinished sentence


@pytest.fixture(scope="module")
def turn_audio():
    """Two turns with mid-sentence pauses, light noise, as float32 (what the stream's frames hold)."""
    audio, _ = synth.synthesize_text("set a timer for | five minutes. what is the weather in | paris",
                                     pause_s=0.9, end_s=2.0)
    noise = np.random.default_rng(0).normal(0, 3e-4, len(audio))
    return (audio + noise).astype(np.float32)


def run_live(model, audio, policy, chunk=3000):
    s = model.stream(end_of_turn=policy)
    events = []
    for i in range(0, len(audio), chunk):
        events += s.feed(audio[i:i + chunk], 24_000)
    steps = [e for e in events if isinstance(e, Step)]
    return steps, [e for e in events if isinstance(e, EndOfTurn)]


@pytest.mark.parametrize("threshold, min_silence_s", [(0.7, 0.45), (0.5, 0.2), (0.3, 0.1)])
def test_vetoed_silence_live_equals_offline(model, turn_audio, threshold, min_silence_s):
    steps, live = run_live(model, turn_audio, VetoedSilenceEndOfTurn(2.0, threshold, min_silence_s))
    trace = turns.Trace(np.array([e.time_s for e in steps]), {2.0: np.array([e.p_eot[2.0] for e in steps])},
                        audio=turn_audio, sample_rate=24_000)
    offline = turns.VetoedSilencePolicy(2.0, threshold, min_silence_s).decide(trace)
    assert len(offline) >= 1  # it does decide somewhere: the comparison is not empty against empty
    assert [e.time_s for e in live] == pytest.approx(offline, abs=1e-6)
    assert all(e.policy.startswith(f"silence >= {min_silence_s:g} s") for e in live)


def test_vetoed_silence_waits_through_the_mid_sentence_pause(model, turn_audio):
    """A plain silence timer fires inside "set a timer for | ..."; the vetoed one does not."""
    steps, live = run_live(model, turn_audio, VetoedSilenceEndOfTurn(2.0, 0.7, 0.45))
    trace = turns.Trace(np.array([e.time_s for e in steps]), {2.0: np.array([e.p_eot[2.0] for e in steps])},
                        audio=turn_audio, sample_rate=24_000)
    timer = turns.SilencePolicy(0.45).decide(trace)
    assert len(timer) > len(live)  # the timer also fired in the pauses the head vetoed


def test_policies_are_per_stream_copies_and_reset(model, turn_audio):
    prototype = VetoedSilenceEndOfTurn(2.0, 0.5, 0.2)
    streams = model.streams(2, end_of_turn=prototype)
    out = streams.feed([turn_audio, turn_audio[: len(turn_audio) // 2]], 24_000)
    assert prototype.last_speech_s is None  # the prototype itself never streams
    a, b = streams.state.policies
    assert a is not b and a.last_speech_s is not None
    streams.reset(0)
    assert streams.state.policies[0].last_speech_s is None and streams.state.policies[1] is b
    assert sum(isinstance(e, EndOfTurn) for e in out[0]) >= 1


def test_default_policy_and_a_missing_head(model, tiny_model):
    s = model.stream()
    assert isinstance(s.state.policies[0], ThresholdEndOfTurn) and s.state.policies[0].name == "p_eot_2s > 0.5"
    with pytest.raises(ValueError, match=r"reads the 7 s head; this model's heads: \['0.5 s', '1 s', '2 s', '3 s'\]"):
        model.stream(end_of_turn=VetoedSilenceEndOfTurn(horizon_s=7.0))
    with pytest.raises(ValueError, match="must split an 80 ms frame"):
        VetoedSilenceEndOfTurn(vad_frame_s=0.03)


LIVE_CASES = [turns.ThresholdPolicy(2.0, 0.5), turns.ThresholdPolicy(1.0, 0.3, warmup_steps=5),
              turns.EMAPolicy(2.0), turns.EMAPolicy(2.0, 0.4, attack_s=0.3, release_s=0.0),
              turns.HysteresisPolicy(2.0), turns.HysteresisPolicy(2.0, 0.8, 0.2, 0.1, 0.05, warmup_steps=3),
              turns.UnmutePolicy(2.0), turns.UnmutePolicy(1.0, 0.5, 0.1, 0.05, warmup_steps=4, flush_s=0.3),
              turns.VetoedSilencePolicy(2.0, 0.5, 0.2), turns.SilencePolicy(0.5), turns.SilencePolicy(0.2)]


@pytest.mark.parametrize("policy", LIVE_CASES, ids=lambda p: f"{type(p).__name__}-{sorted(turns.params(p).items())}")
def test_every_policy_decides_live_what_it_decides_offline(model, turn_audio, policy):
    live_policy = lab.live_turns.live_policy(policy)
    s = model.stream(end_of_turn=live_policy)
    events = [e for i in range(0, len(turn_audio), 3000) for e in s.feed(turn_audio[i:i + 3000], 24_000)]
    steps = [e for e in events if isinstance(e, Step)]
    live = [e for e in events if isinstance(e, EndOfTurn)]
    trace = turns.Trace(np.array([e.time_s for e in steps]),
                        {h: np.array([e.p_eot[h] for e in steps]) for h in model.cfg.eot_horizons_s},
                        audio=turn_audio, sample_rate=24_000,
                        word_times_s=np.array([e.emitted_s for e in events if isinstance(e, Word)]))
    offline = policy.decide(trace)
    assert len(offline) >= 1  # it decides somewhere: not empty against empty
    # The same decisions; times equal up to how a VAD frame's end is written (k x 0.02 s, or rounded to 0.1 ms)
    assert [e.time_s for e in live] == pytest.approx(offline, abs=1e-9)
    assert all(e.policy == live_policy.name for e in live)


def test_every_default_policy_but_silero_has_a_live_twin():
    for policy in turns.default_policies((0.5, 1.0, 2.0, 3.0)):
        if isinstance(policy, turns.SileroPolicy):
            with pytest.raises(ValueError, match="has no live twin"):
                lab.live_turns.live_policy(policy)
        else:
            assert lab.live_turns.live_policy(policy).horizon_s in (2.0, 3.0, 1.0, 0.5, None)


def test_a_silence_timer_runs_live_on_a_model_without_heads(tokenizer_path, turn_audio):
    from conftest import make_model

    model = make_model(tokenizer_path, eot_horizons_s=())
    s = model.stream(end_of_turn=lab.live_turns.SilenceEndOfTurn(0.3))
    assert any(isinstance(e, EndOfTurn) for e in s.feed(turn_audio, 24_000))
