"""The DSM transformer: whole-sequence forward() and streaming step() agree, and batch slots are independent."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model

from lab.model import FRAME_SIZE, DSMConfig

STEPS = 50  # > context (16): the ring buffer wraps three times


def random_inputs(model, steps=STEPS, batch=1, seed=0):
    """Audio frames (B, T, 1920) and the text tokens each step reads (initial id at step 0)."""
    g = torch.Generator().manual_seed(seed)
    frames = 0.1 * torch.randn(batch, steps, FRAME_SIZE, generator=g)
    text = torch.randint(0, model.cfg.text_vocab_out, (batch, steps), generator=g)
    text[:, 0] = model.cfg.initial_text_id
    return frames, text


def stream_steps(model, frames, text, alignment):
    """Run step() over the frames one at a time, as lab.stream does: returns logits (B, T, V), p_eot (B, T, H)."""
    B, T, _ = frames.shape
    cache, state = model.new_cache(B), model.init_frontend_state(B)
    previous = torch.zeros(B, model.cfg.d_model)
    logits, p_eot = [], []
    for t in range(T):
        frame_emb = model.embed_frame(frames[:, t], state)
        step_emb = previous if alignment == "training" else frame_emb
        lg, pe = model.step(step_emb, text[:, t], cache)
        previous = frame_emb
        logits.append(lg)
        p_eot.append(pe)
    return torch.stack(logits, 1), torch.stack(p_eot, 1), cache


@pytest.mark.parametrize("alignment", ["training", "scripts"])
def test_forward_and_step_agree_after_the_ring_wraps(tokenizer_path, alignment):
    model = make_model(tokenizer_path)
    frames, text = random_inputs(model, batch=2)
    with torch.no_grad():
        frame_emb = model.frontend(frames)
        logits, eot_logits = model(model.align_audio(frame_emb, alignment), text)
    p_eot = eot_logits.softmax(-1)[..., 0]

    step_logits, step_p_eot, cache = stream_steps(model, frames, text, alignment)
    assert cache.next_pos.tolist() == [STEPS, STEPS]
    assert STEPS > 3 * model.cfg.context
    torch.testing.assert_close(step_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_p_eot, p_eot, atol=1e-5, rtol=1e-5)
    assert logits.argmax(-1).unique().numel() > 3  # the comparison covers varied outputs, not one token

    # The band matters: with an unbounded context, whole-sequence logits differ once the ring has wrapped,
    # so the agreement above is not an accident of short sequences.
    context = model.cfg.context
    try:
        model.cfg.context = 10_000
        with torch.no_grad():
            unbounded, _ = model(model.align_audio(frame_emb, alignment), text)
    finally:
        model.cfg.context = context
    torch.testing.assert_close(unbounded[:, :context], logits[:, :context], atol=1e-5, rtol=1e-5)
    assert (unbounded[:, context + 1:] - logits[:, context + 1:]).abs().max() > 1e-3


def test_align_audio_shifts_frames_as_documented(tiny_model):
    emb = torch.arange(5, dtype=torch.float32)[None, :, None].expand(1, 5, tiny_model.cfg.d_model)
    initial = tiny_model.frontend.initial(1)[0]
    training = tiny_model.align_audio(emb, "training")
    scripts = tiny_model.align_audio(emb, "scripts")
    assert torch.equal(training[0, 0], initial) and torch.equal(scripts[0, 0], initial)
    assert training[0, 1:, 0].tolist() == [0, 1, 2, 3]  # step t sees frame t-1
    assert scripts[0, 1:, 0].tolist() == [1, 2, 3, 4]  # step t sees frame t
    with pytest.raises(ValueError, match="alignment"):
        tiny_model.align_audio(emb, "ahead")


def solo_run(model, emb, text):
    """One stream alone: logits (T, V) and p_eot (T, H)."""
    cache = model.new_cache(1)
    outs = [model.step(emb[None, t], text[None, t], cache) for t in range(len(text))]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def test_resetting_one_slot_leaves_the_others_alone(tiny_model):
    model, T, reset_at = tiny_model, 40, 23
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(3, T, model.cfg.d_model, generator=g)
    text = torch.randint(0, model.cfg.text_vocab_out, (3, T), generator=g)
    cache = model.new_cache(3)
    logits, p_eot = [], []
    for t in range(T):
        if t == reset_at:
            cache.reset(1)
        step_emb, step_text = emb[:, t].clone(), text[:, t].clone()
        if t >= reset_at:  # slot 1 starts its inputs from the beginning again
            step_emb[1], step_text[1] = emb[1, t - reset_at], text[1, t - reset_at]
        lg, pe = model.step(step_emb, step_text, cache)
        logits.append(lg)
        p_eot.append(pe)
    logits, p_eot = torch.stack(logits, 1), torch.stack(p_eot, 1)  # (3, T, ...)

    for b in (0, 2):  # undisturbed: equal to their solo runs, also after the ring wrapped
        solo_logits, solo_p = solo_run(model, emb[b], text[b])
        torch.testing.assert_close(logits[b], solo_logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(p_eot[b], solo_p, atol=1e-5, rtol=1e-5)
    fresh_logits, fresh_p = solo_run(model, emb[1], text[1])
    torch.testing.assert_close(logits[1, :reset_at], fresh_logits[:reset_at], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1, reset_at:], fresh_logits[:T - reset_at], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p_eot[1, reset_at:], fresh_p[:T - reset_at], atol=1e-5, rtol=1e-5)
    # ... and the reset really restarted it: without the reset its outputs would differ.
    assert (logits[1, reset_at:] - fresh_logits[reset_at:]).abs().max() > 1e-3
    assert cache.next_pos.tolist() == [T, T - reset_at, T]


def test_idle_slot_keeps_its_cache_and_position(tiny_model):
    model, T = tiny_model, 30
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(3, T, model.cfg.d_model, generator=g)
    text = torch.randint(0, model.cfg.text_vocab_out, (3, T), generator=g)
    cache = model.new_cache(3)
    for t in range(20):
        model.step(emb[:, t], text[:, t], cache)
    before = (cache.keys.clone(), cache.values.clone(), cache.positions.clone(), cache.next_pos.clone())
    active = torch.tensor([True, False, True])
    model.step(emb[:, 20], text[:, 20], cache, active=active)
    keys, values, positions, next_pos = before
    assert torch.equal(cache.keys[:, 1], keys[:, 1]) and torch.equal(cache.values[:, 1], values[:, 1])
    assert torch.equal(cache.positions[1], positions[1])
    assert cache.next_pos.tolist() == [21, 20, 21]
    assert not torch.equal(cache.keys[:, 0], keys[:, 0])  # the active slots did write
    assert not torch.equal(cache.positions[2], positions[2])


def test_idle_gaps_do_not_change_a_slots_outputs(tiny_model):
    """A slot that sits out some steps continues exactly as if the gaps were not there."""
    model, T = tiny_model, 36
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(2, T, model.cfg.d_model, generator=g)
    text = torch.randint(0, model.cfg.text_vocab_out, (2, T), generator=g)
    cache = model.new_cache(2)
    used = [0, 0]  # inputs consumed per slot
    got: list[list[torch.Tensor]] = [[], []]
    t = 0
    while min(used) < T:
        active = torch.tensor([used[0] < T, used[1] < T and t % 3 != 1])  # slot 1 idles every third step
        t += 1
        e = torch.stack([emb[b, min(used[b], T - 1)] for b in range(2)])
        x = torch.stack([text[b, min(used[b], T - 1)] for b in range(2)])
        logits, _ = model.step(e, x, cache, active=active)
        for b in range(2):
            if active[b]:
                got[b].append(logits[b])
                used[b] += 1
    for b in range(2):
        solo_logits, _ = solo_run(model, emb[b], text[b])
        torch.testing.assert_close(torch.stack(got[b]), solo_logits, atol=1e-5, rtol=1e-5)


def test_cache_size_is_bounded_by_the_context(tiny_model):
    cache = tiny_model.new_cache(2)
    size = cache.nbytes()
    emb = torch.randn(2, tiny_model.cfg.d_model)
    for _ in range(3 * tiny_model.cfg.context):
        tiny_model.step(emb, torch.zeros(2, dtype=torch.long), cache)
    assert cache.nbytes() == size
    assert sorted(cache.positions[0].tolist()) == list(range(2 * 16, 3 * 16))  # the last `context` steps


def test_config_checks_and_round_trip():
    cfg = DSMConfig(d_model=32, num_heads=4, eot_horizons_s=[0.5, 2])
    assert cfg.eot_horizons_s == (0.5, 2.0)
    assert DSMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown config keys"):
        DSMConfig.from_dict({**cfg.to_dict(), "n_layer": 3})
    with pytest.raises(ValueError, match="heads"):
        DSMConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="audio_input"):
        DSMConfig(audio_input="mel")


def test_info_describes_the_model(tiny_model):
    info = tiny_model.info
    assert info.sample_rate == 24_000 and info.frame_rate == 12.5 and info.frame_size == 1920
    assert info.delay_frames == 3 and info.delay_s == pytest.approx(0.24)
    assert info.n_params == sum(p.numel() for p in tiny_model.parameters())
    assert info.vad_horizons_s == (0.5, 1.0, 2.0, 3.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_forward_and_step_agree_on_cuda(tokenizer_path):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = make_model(tokenizer_path).cuda()
    frames, text = random_inputs(model, batch=2)
    frames, text = frames.cuda(), text.cuda()
    with torch.no_grad():
        logits, _ = model(model.align_audio(model.frontend(frames), "training"), text)
    B, T, _ = frames.shape
    cache, state = model.new_cache(B), model.init_frontend_state(B)
    previous, step_logits = torch.zeros(B, model.cfg.d_model, device="cuda"), []
    active = torch.tensor([True, True], device="cuda")
    for t in range(T):
        frame_emb = model.embed_frame(frames[:, t], state, active)
        step_logits.append(model.step(previous, text[:, t], cache, active=active)[0])
        previous = frame_emb
    torch.testing.assert_close(torch.stack(step_logits, 1), logits, atol=1e-4, rtol=1e-4)
