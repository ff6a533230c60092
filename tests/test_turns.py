"""The turn-detection lab: policies on hand-made traces, the measures on constructed turns, the baselines on
real synth audio, the drill-down table and the `dsm-lab turns` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model

import lab
import lab.cli
from lab import evaluate, metrics, silero, turns
from lab.audio import resample
from lab.events import Word
from lab.synth import generate_corpus
from lab.turns import EMAPolicy, HysteresisPolicy, SilencePolicy, SileroPolicy, ThresholdPolicy, Trace

STEP = 0.08


def trace_of(*values, horizon=2.0, **more) -> Trace:
    """A trace whose steps are 80 ms apart (times 0.08, 0.16, ...), with one head (or several via more)."""
    heads = {horizon: np.asarray(values, float), **{h: np.asarray(v, float) for h, v in more.items()}}
    n = len(values)
    return Trace(np.round(STEP * np.arange(1, n + 1), 4), heads)


def at(i: int) -> float:
    return round(STEP * (i + 1), 4)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DSM_LAB_CACHE", str(tmp_path / "cache"))  # Silero's probabilities stay in the test
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ policies


def test_threshold_fires_on_each_rise_after_speech():
    #           0    1    2    3    4    5    6    7    8    9
    tr = trace_of(0.9, 0.9, 0.1, 0.2, 0.7, 0.8, 0.3, 0.6, 0.5, 0.9)
    # 0-1: above but nobody spoke yet (disarmed); 4: first rise; 7: rises again after 6; 8 == 0.5 is not above
    assert ThresholdPolicy(2.0, 0.5).decide(tr) == [at(4), at(7)]  # 8 sits at 0.5: neither re-arms nor fires
    assert ThresholdPolicy(2.0, 0.75).decide(tr) == [at(5), at(9)]


def test_warmup_steps_are_ignored():
    tr = trace_of(0.1, 0.9, 0.1, 0.1, 0.9, 0.1)
    assert ThresholdPolicy(2.0, 0.5).decide(tr) == [at(1), at(4)]
    assert ThresholdPolicy(2.0, 0.5, warmup_steps=2).decide(tr) == [at(4)]  # the rise at step 1 is ignored
    assert ThresholdPolicy(2.0, 0.5, warmup_steps=4).decide(tr) == []  # nothing armed it after the warm-up


def test_ema_attack_and_release_are_half_lives():
    times = STEP * np.arange(1, 7)
    up = turns.ema([1, 1, 1, 1, 1, 1], times, attack_s=0.16, release_s=0.04, initial=0.0)
    np.testing.assert_allclose(up[[1, 3]], [0.5, 0.75])  # 0.16 s = two steps per halving of the gap
    down = turns.ema([0, 0, 0], times[:3], attack_s=0.16, release_s=0.04, initial=1.0)
    np.testing.assert_allclose(down, [0.25, 0.0625, 0.015625])  # 0.04 s: two halvings per step
    np.testing.assert_allclose(turns.ema([0.3, 0.9], times[:2], 0, 0, 1.0), [0.3, 0.9])  # 0: no smoothing


def test_ema_policy_ignores_a_one_step_spike_and_waits_out_its_attack():
    spike = trace_of(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    assert ThresholdPolicy(2.0, 0.6).decide(spike) == [at(2)]
    assert EMAPolicy(2.0, 0.6, attack_s=0.16, release_s=0.04, warmup_steps=0).decide(spike) == []
    step_up = trace_of(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    # smoothed: 0.29, 0.5, 0.65 -> above 0.6 at the third step of silence, 160 ms after the plain threshold
    assert EMAPolicy(2.0, 0.6, attack_s=0.16, release_s=0.04, warmup_steps=0).decide(step_up) == [at(4)]


def test_hysteresis_needs_speech_below_the_lower_level_to_fire_again():
    pol = HysteresisPolicy(2.0, pause_above=0.6, speech_below=0.4, attack_s=0, release_s=0, warmup_steps=0)
    #           0    1     2    3    4    5    6     7    8
    tr = trace_of(0.1, 0.65, 0.5, 0.7, 0.4, 0.6, 0.39, 0.61, 0.9)
    assert pol.decide(tr) == [at(1), at(7)]  # 3: no re-arm at 0.5; 4: 0.4 is not below; 5: 0.6 is not above
    assert ThresholdPolicy(2.0, 0.6).decide(tr) == [at(1), at(3), at(7)]  # one level: fires again at 3
    unmute = HysteresisPolicy()
    assert (unmute.pause_above, unmute.speech_below, unmute.warmup_steps, unmute.initial) == (0.6, 0.4, 12, 1.0)
    assert unmute.decide(trace_of(*[0.1] * 13, 0.9)) == [at(13)]
    assert unmute.decide(trace_of(*[0.1] * 5, 0.9, *[0.9] * 8)) == []  # the rise came during the warm-up


def test_sweeps_set_the_swept_parameter_and_keep_the_hysteresis_gap():
    assert turns.with_value(HysteresisPolicy(), 0.8) == HysteresisPolicy(pause_above=0.8, speech_below=0.6)
    assert turns.with_value(HysteresisPolicy(), 0.1).speech_below == 0.0
    assert turns.with_value(SilencePolicy(), 1.25).min_silence_s == 1.25
    assert turns.params(SileroPolicy(700)) == {"min_silence_duration_ms": 700, "threshold": 0.5}


def test_semantic_policy_without_heads_says_so():
    tr = Trace(np.array([0.08, 0.16]), {})
    with pytest.raises(ValueError, match="no end-of-turn heads"):
        ThresholdPolicy().decide(tr)
    with pytest.raises(ValueError, match="horizon 3 s.*'2 s'"):
        ThresholdPolicy(3.0).decide(trace_of(0.1, 0.2))
    assert [type(p) for p in turns.default_policies(())] == [SilencePolicy, SileroPolicy]


def test_vetoed_silence_waits_for_the_head_inside_an_unfinished_sentence():
    # Energy VAD frames every 20 ms: speech 0-1 s, a pause 1-1.6 s (mid-sentence), speech 1.6-2.4 s, silence.
    t = np.round(0.02 * np.arange(1, 201), 4)
    speech = ((t > 0.0) & (t <= 1.0)) | ((t > 1.6) & (t <= 2.4))
    # The 2 s head (one value per 80 ms step): low through the pause; high from the step at 2.56 s, then it
    # dips back at 3.2 s and rises again at 3.52 s, all inside the final silence.
    steps = np.round(0.08 * np.arange(1, 51), 4)
    p = np.where((steps >= 2.56) & ~((steps >= 3.2) & (steps < 3.52)), 0.9, 0.1)
    assert turns.silence_decisions(t, speech, 0.2) == [1.2, 2.6]  # the timer alone cuts the pause
    assert turns.vetoed_silence_decisions(t, speech, steps, p, 0.2, 0.5) == [2.6]  # vetoed at 1.2, once after
    assert turns.vetoed_silence_decisions(t, speech, steps, p, 0.2, 0.95) == []  # the head never agrees
    # The head agrees late (2.96 s): the decision waits for it, then comes at the first frame after that step.
    late = np.where(steps >= 2.96, 0.9, 0.1)
    assert turns.vetoed_silence_decisions(t, speech, steps, late, 0.2, 0.5) == [2.96]
    trace = Trace(steps, {2.0: p}, audio=None)
    trace.cache[("energy", 0.02, -60.0, -35.0, 10.0)] = (t, speech)  # what SilencePolicy().speech would give
    policy = turns.VetoedSilencePolicy(2.0, threshold=0.5, min_silence_s=0.2)
    assert policy.decide(trace) == [2.6] and policy.kind == "semantic"
    assert turns.with_value(policy, 0.3).min_silence_s == 0.3
    assert turns.VetoedSilencePolicy in [type(x) for x in turns.default_policies((0.5, 1.0, 2.0, 3.0))]


def test_silence_decisions_count_silence_after_speech_only():
    t = np.round(0.02 * np.arange(1, 21), 4)
    speech = np.array([0] * 5 + [1] * 5 + [0] * 4 + [1] * 2 + [0] * 4, bool)
    assert turns.silence_decisions(t, speech, 0.06) == [t[12], t[18]]  # not in the leading silence
    assert turns.silence_decisions(t, speech, 0.1) == []


# ---------------------------------------------------------------------------------------------- measures


def test_judge_turn_early_cut_latency_and_miss():
    o = metrics.judge_turn([0.2, 1.5, 3.4, 3.9], turn_end_s=3.0, turn_start_s=0.5)
    assert o.early_cut and o.first_early_s == 1.5 and not o.missed  # 0.2: before the turn, nobody's
    assert o.latency_s == pytest.approx(0.4)
    o = metrics.judge_turn([0.2, 3.25], turn_end_s=3.0, turn_start_s=0.5)
    assert not o.early_cut and o.latency_s == pytest.approx(0.25)
    o = metrics.judge_turn([1.0], turn_end_s=3.0, turn_start_s=0.5)
    assert o.early_cut and o.missed and np.isnan(o.latency_s)
    first, second = metrics.judge_item([2.5, 4.5, 6.2], [{"start": 0.5, "end": 2.0}, {"start": 4.0, "end": 6.0}])
    assert (first.latency_s, first.early_cut) == (0.5, False)  # 4.5 belongs to the second turn, not the first
    assert second.early_cut and second.latency_s == pytest.approx(0.2)


def test_summary_rates_and_latency_percentiles():
    outcomes = [metrics.judge_turn([3.0 + lat], 3.0) for lat in (0.1, 0.2, 0.3, 0.4)]
    outcomes += [metrics.judge_turn([1.0, 3.5], 3.0), metrics.judge_turn([], 3.0)]
    s = metrics.summarize_turns(outcomes)
    assert s["turns"] == 6 and s["early_cut_rate"] == pytest.approx(1 / 6) and s["miss_rate"] == pytest.approx(1 / 6)
    assert s["latency_p50_s"] == pytest.approx(0.25)  # the cut and the missed turns have no latency
    assert s["latency_p90_s"] == pytest.approx(0.37)


def test_locate_names_the_pause_or_word():
    words = [{"text": "set", "start": 0.5, "end": 0.8}, {"text": "a", "start": 0.9, "end": 1.0},
             {"text": "timer", "start": 2.0, "end": 2.4}]
    pauses = [{"start": 1.0, "end": 2.0, "kind": "mid_turn"}, {"start": 2.4, "end": 4.0, "kind": "end_of_turn"}]
    assert metrics.locate(1.5, words, pauses) == {"where": "mid_turn", "start_s": 1.0, "end_s": 2.0}
    assert metrics.locate(0.6, words, pauses)["where"] == "speech"
    assert metrics.locate(0.85, words, pauses) == {"where": "gap", "start_s": 0.8, "end_s": 0.9}
    assert metrics.locate(0.1, words, pauses)["where"] == "before_speech"
    assert metrics.locate(3.0, words, pauses)["where"] == "end_of_turn"


def test_compare_tradeoffs_passes_only_at_half_the_early_cuts():
    base = pd.DataFrame({"policy": "silence", "value": [0.1, 0.5, 1.0, 2.0], "early_cut_rate": [0.6, 0.4, 0.2, 0.0],
                         "latency_p50_s": [0.1, 0.5, 1.0, 2.0], "miss_rate": 0.0})
    cand = pd.DataFrame({"policy": "semantic", "value": [0.3, 0.6], "early_cut_rate": [0.2, 0.15],
                         "latency_p50_s": [0.3, 0.8], "miss_rate": 0.0})
    table = evaluate.compare_tradeoffs(cand, base)
    assert list(table.baseline_value) == [0.5, 1.0]  # only 0.2-1.5 s
    assert list(table.passes) == [True, False]  # 0.2 <= 0.5 * 0.4; 0.15 > 0.5 * 0.2
    assert list(table.value) == [0.3, 0.6]


# ------------------------------------------------------------------------------- baselines on synth audio


@pytest.fixture(scope="module")
def synth_items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    generate_corpus(folder, 4, seed=7, progress=False)
    return folder


@pytest.fixture(scope="module")
def baseline_results(synth_items):
    return evaluate.run_items(None, synth_items, tail_s=1.0)


def test_silence_baseline_on_synth_audio(baseline_results):
    mid = [(r, p) for r in baseline_results for p in r.pauses if p["kind"] == "mid_turn"]
    assert mid, "seed 7 has mid-turn pauses"
    short = SilencePolicy(min_silence_s=0.25)
    for r in baseline_results:
        o = metrics.judge_item(short.decide(r.trace), r.turns)[0]
        assert 0.22 <= o.latency_s <= 0.3  # the end of the last word, plus 0.25 s of silence
    for r, p in mid:  # 0.25 s into the mid-turn pause: the speaker is cut off
        assert any(p["start"] + 0.2 <= d <= p["start"] + 0.32 for d in short.decide(r.trace))
    patient = SilencePolicy(min_silence_s=max(p["end"] - p["start"] for _, p in mid) + 0.2)
    s = metrics.summarize_turns(evaluate.outcomes(baseline_results, patient))
    assert s["early_cut_rate"] == 0 and s["miss_rate"] == 0
    assert s["latency_p50_s"] == pytest.approx(patient.min_silence_s, abs=0.03)


def test_silero_finds_the_words_and_follows_its_streaming_rule(baseline_results):
    from silero_vad import VADIterator

    r = max(baseline_results, key=lambda r: len(r.ref_words))
    times, probs = turns.silero_speech_probs(r.trace.audio, 24_000)
    assert len(list(silero._cache_dir().glob("*.npy"))) == 1  # kept for the next sweep
    np.testing.assert_array_equal(SileroPolicy().probs(r.trace)[1], probs)
    inside = np.array([any(w["start"] + 0.05 <= t - 0.032 and t <= w["end"] for w in r.ref_words) for t in times])
    quiet = (times < r.ref_words[0]["start"] - 0.1) | (times > r.turn_end_s + 0.3)
    assert (probs[inside] > 0.5).mean() > 0.8 and (probs[quiet] > 0.5).mean() < 0.1

    # Our decisions from cached probabilities are the VADIterator's "end" events, at the chunk that ends them.
    x16 = torch.from_numpy(resample(r.trace.audio.astype(np.float64), 24_000, 16_000).astype(np.float32))
    it = VADIterator(silero._silero_model(), min_silence_duration_ms=300)
    ends = [(k + 1) * 512 / 16_000 for k in range(len(x16) // 512) if "end" in (it(x16[k * 512:(k + 1) * 512]) or {})]
    assert ends and SileroPolicy(300).decide(r.trace) == pytest.approx(ends)


# ------------------------------------------------------------------------------------------- drill-down


def constructed_result() -> evaluate.ItemResult:
    words = [{"text": "call", "start": 0.3, "end": 0.6}, {"text": "my", "start": 0.6, "end": 0.8},
             {"text": "mother", "start": 1.8, "end": 2.3}]
    pauses = [{"start": 0.8, "end": 1.8, "kind": "mid_turn"}, {"start": 2.3, "end": 4.0, "kind": "end_of_turn"}]
    t = np.round(STEP * np.arange(1, 51), 4)
    p2 = np.where((t > 1.1) & (t < 1.8), 0.9, 0.05) + np.where(t > 2.5, 0.9, 0)
    trace = Trace(t, {1.0: p2 / 2, 2.0: p2})
    hyp = [Word("call", 0.3, 0.6, 1.0), Word("my", 0.6, 0.8, 1.3), Word("mother", 1.8, 2.3, 2.8)]
    return evaluate.ItemResult("made", "call my mother", "call my mother", words, hyp, pd.DataFrame(), 0.3, 2.3,
                               [{"start": 0.3, "end": 2.3}], pauses, trace)


def test_early_cut_table_says_what_fooled_the_policy():
    table = evaluate.early_cuts([constructed_result()], ThresholdPolicy(2.0, 0.5))
    assert len(table) == 1
    row = table.iloc[0]
    assert row.decision_s == at(13) == 1.12 and row.cut_in == "mid_turn" and row.word == ""
    assert (row.pause_start_s, row.pause_end_s, row.pause_s) == (0.8, 1.8, 1.0)
    assert row.silence_so_far_s == pytest.approx(0.32) and row.early_by_s == pytest.approx(1.18)
    assert (row.said_so_far, row.transcript_so_far, row.still_to_say) == ("call my", "call", "mother")
    assert row.p_eot_2s == pytest.approx(0.9) and row.p_eot_1s == pytest.approx(0.45)
    assert len(row.p_eot_2s_around) == 11 and row.p_eot_2s_around[5] == pytest.approx(0.9)  # +-0.4 s
    assert row.p_eot_2s_around[4] == pytest.approx(0.05)
    assert evaluate.early_cuts([constructed_result()], ThresholdPolicy(2.0, 0.97)).empty


# ------------------------------------------------------------------------------------------------- CLI


def test_dsm_lab_turns_json_lines(tiny_model_dir, synth_items, tmp_path):
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "DSM_LAB_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "lab.cli", "turns", str(synth_items), "--model",
                          str(tiny_model_dir), "--limit", "2", "--json"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    keys = {"policy", "kind", "params", "early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate", "turns"}
    assert all(set(r) == keys for r in rows)
    assert {r["kind"] for r in rows} == {"semantic", "silence", "acoustic"}
    assert {r["policy"] for r in rows} >= {"threshold p_eot_2s", "hysteresis p_eot_2s", "silero vad"}
    silero = [r for r in rows if r["kind"] == "acoustic"]
    assert len(silero) == len(SileroPolicy.sweep_values) and silero[0]["params"]["min_silence_duration_ms"] == 50
    assert all(r["turns"] == 2 and 0 <= r["early_cut_rate"] <= 1 for r in rows)


def test_model_without_heads_runs_the_baselines(tokenizer_path, synth_items, tmp_path, capsys):
    folder = lab.save(make_model(tokenizer_path, eot_horizons_s=()), tmp_path / "no-heads", tokenizer_path)
    assert evaluate.turns_cli(Namespace(dir=str(synth_items), model=str(folder), limit=2, json=True)) == 0
    out = capsys.readouterr()
    assert "no end-of-turn heads" in out.err
    kinds = {json.loads(line)["kind"] for line in out.out.splitlines()}
    assert kinds == {"silence", "acoustic"}


def test_dsm_lab_eval_still_runs(tiny_model_dir, synth_items, capsys):
    assert lab.cli.main(["eval", str(synth_items), "--model", str(tiny_model_dir), "--limit", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["kind"] == "transcription"
    assert [r["kind"] for r in rows[1:]] == ["end_of_turn", "end_of_turn"]
    assert {"threshold", "early_cut_rate", "baseline_min_silence_s", "baseline_early_cut_rate"} <= set(rows[1])
