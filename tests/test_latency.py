"""The latency lab (lab.latency) and the benchmark command: the simulated clock, the flush measurement on a
model whose words come out at known steps, and `dsm-lab bench --quick --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_model, speechlike

from lab import latency
from lab.model import FRAME_RATE, FRAME_SIZE


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ clock
def test_clock_on_constructed_compute_times():
    arrivals = [0.08, 0.16, 0.24, 0.32, 0.40, 0.40]
    compute = [0.01, 0.20, 0.01, 0.01, 0.05, 0.02]  # call 1 is slow: calls 2 and 3 queue behind it
    starts, ends = latency.simulate_clock(arrivals, compute)
    np.testing.assert_allclose(starts, [0.08, 0.16, 0.36, 0.37, 0.40, 0.45])
    np.testing.assert_allclose(ends, [0.09, 0.36, 0.37, 0.38, 0.45, 0.47])
    _, offline_ends = latency.simulate_clock(np.zeros(6), compute)  # the whole file at once: back to back
    np.testing.assert_allclose(offline_ends, np.cumsum(compute))
    with pytest.raises(ValueError):
        latency.simulate_clock([0.2, 0.1], [0.0, 0.0])


def test_clock_never_starts_a_call_early():
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.uniform(0, 5, 300))
    compute = rng.exponential(0.02, 300)
    starts, ends = latency.simulate_clock(arrivals, compute)
    assert np.all(starts >= arrivals) and np.all(starts[1:] >= ends[:-1])
    # ... and no later than it must: when its audio is there and the call before it has ended.
    np.testing.assert_allclose(starts, np.maximum(arrivals, np.concatenate([[-np.inf], ends[:-1]])))
    np.testing.assert_allclose(ends - starts, compute)


def test_replay_views(tiny_model):
    audio = speechlike(2.0, 16_000, seed=50)
    r = latency.replay(tiny_model, audio, 16_000, chunk_s=0.05)
    calls = r.calls
    assert len(calls) == 40 and (calls.arrival_s == calls.audio_end_s).all()
    assert (calls.start_s >= calls.arrival_s).all()
    assert (calls.start_s.iloc[1:].values >= calls.end_s.iloc[:-1].values).all()
    assert calls.n_steps.sum() == len(r.steps)
    assert int(2.0 * FRAME_RATE) - 1 <= len(r.steps) <= int(2.0 * FRAME_RATE)  # the resampler holds a few back
    assert (r.words.delivered_s >= r.words.emitted_s - 1e-9).all()  # never before its audio existed
    offline = r.retime("offline")
    np.testing.assert_allclose(offline.calls.end_s, np.cumsum(calls.compute_s))
    assert offline.rtf == r.rtf == pytest.approx(2.0 / calls.compute_s.sum())
    assert latency.step_distribution(r.steps)["steps"] == len(r.steps)


# -------------------------------------------------------------------------------------------- flush
def onset_model(tokenizer_path, delay=3):
    """A stand-in DSM whose text follows the audio exactly as training targets do: a frame that starts a
    loud stretch (a "word" onset) at step j gives EPAD at step j + D - 1, one word piece at j + D, and PAD
    otherwise. So each word is complete, and comes out, at step onset + D + 1."""
    model = make_model(tokenizer_path, delay_frames=delay)
    tok, cfg = model.tokenizer, model.cfg
    piece = next(i for i in range(4, cfg.text_vocab_out) if tok.is_text(i) and tok.starts_word(i))
    loud: dict[int, list[bool]] = {}

    def embed_frame(frames, state, active=None):
        emb = torch.zeros(frames.shape[0], cfg.d_model)
        emb[:, 0] = frames.float().pow(2).mean(-1).sqrt()
        return emb

    def step(audio_emb, text_in, cache, active=None):
        B = audio_emb.shape[0]
        active = torch.ones(B, dtype=torch.bool) if active is None else active
        logits = torch.zeros(B, cfg.text_vocab_out)
        for b in range(B):
            p = int(cache.next_pos[b])
            history = loud.setdefault(b, [])
            del history[p:]  # a reset stream starts again at 0
            history.append(bool(audio_emb[b, 0] > 0.01) and p > 0)
            onset = [j for j in (p - delay + 1, p - delay) if j >= 1 and history[j] and not history[j - 1]]
            token = cfg.pad_id if not onset else cfg.epad_id if onset[0] == p - delay + 1 else piece
            logits[b, token] = 1.0
        cache.next_pos += active.long()
        return logits, torch.zeros(B, len(cfg.eot_horizons_s))

    model.embed_frame, model.step = embed_frame, step
    return model


def frames_audio(pattern: str) -> np.ndarray:
    """One 80 ms frame per character: '#' a tone, '.' silence (24 kHz)."""
    t = np.arange(FRAME_SIZE) / 24_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.concatenate([tone if c == "#" else np.zeros(FRAME_SIZE, np.float32) for c in pattern])


@pytest.mark.parametrize("delay", [3, 6])
def test_flush_saves_about_the_delay(tokenizer_path, delay):
    model = onset_model(tokenizer_path, delay)
    pattern = "....####...###" + "." * 20  # two words; the turn ends with the second, at frame 14
    audio, turn_end = frames_audio(pattern), 14 * 0.08
    full = latency.replay(model, audio, 24_000)
    assert full.words.text.size == 2
    turns = latency.flush_turns(model, audio, 24_000, [{"start": 0.32, "end": turn_end}], full=full)
    by = turns.set_index("variant")
    assert by.final_word_start_s.nunique() == 1 and by.delivered_s.notna().all()

    # Without flush, the last word comes out with the step that follows onset + D (training alignment: the
    # step for frame k runs when frame k + 1 has arrived): its call's end, 3 frames after onset + D.
    none_call = full.calls.iloc[int(full.words.call.iloc[-1])]
    assert none_call.audio_end_s == pytest.approx((11 + delay + 3) * 0.08)
    assert by.latency_s["none"] == pytest.approx(delay * 0.08 + none_call.compute_s)
    # With the flush: the D + 1 silence frames are stepped at once, as soon as the server is free after the
    # decision (it may still be busy with the last chunk: wait_s), and the word comes out with them.
    for variant in ("flush", "unmute"):
        assert by.flush_steps[variant] == delay + 1
        assert by.wait_s[variant] >= 0
        assert by.latency_s[variant] == pytest.approx(by.wait_s[variant] + by.flush_ms[variant] / 1e3, abs=1e-9)
    # Scored against reference words instead, every variant finds the same final word.
    text = full.words.text.iloc[-1]
    ref = [{"text": text, "start": 0.32, "end": 0.64}, {"text": text, "start": 0.88, "end": turn_end}]
    by_ref = latency.flush_turns(model, audio, 24_000, [{"start": 0.32, "end": turn_end}], full=full,
                                 ref_words=ref).set_index("variant")
    assert (by_ref.final_word_start_s == by.final_word_start_s).all()
    assert by_ref.latency_s["none"] == by.latency_s["none"]
    saved = by.latency_s["none"] - by.latency_s["flush"]
    assert saved == pytest.approx(delay * 0.08 + none_call.compute_s - by.wait_s["flush"] - by.flush_ms["flush"] / 1e3,
                                  abs=1e-9)
    assert saved > 0.5 * delay * 0.08  # the delay minus a few milliseconds of compute


def test_word_latencies_use_the_delivery_clock(tokenizer_path):
    model = onset_model(tokenizer_path, 3)
    audio = frames_audio("....####...###" + "." * 10)
    r = latency.replay(model, audio, 24_000)
    ref = [{"text": w, "start": s, "end": e} for w, s, e in zip(r.words.text, (0.32, 0.88), (0.64, 1.12))]
    lat = latency.word_latencies(r, ref)
    np.testing.assert_allclose(lat.latency_stream_s, lat.emitted_s - lat.ref_end_s)
    np.testing.assert_allclose(lat.latency_s - lat.latency_stream_s, lat.delivered_s - lat.emitted_s)
    assert (lat.latency_s > lat.latency_stream_s).all()


# -------------------------------------------------------------------------------------------- bench
def test_bench_quick_json(tiny_model_dir):
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "lab.cli", "bench", "--quick", "--json", "--model",
                             str(tiny_model_dir)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {r["benchmark"] for r in rows}
    assert {"machine", "single_stream", "batch", "flush", "hook_overhead"} <= kinds
    single = next(r for r in rows if r["benchmark"] == "single_stream")
    assert single["rtf"] > 0 and single["step_ms_p50"] > 0
    batch = [r for r in rows if r["benchmark"] == "batch"]
    assert [r["batch_size"] for r in batch] == sorted(r["batch_size"] for r in batch) and len(batch) >= 2
