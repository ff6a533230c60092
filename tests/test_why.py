"""Activation patching and attribution of an end-of-turn decision, on tiny models whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model, speechlike

from lab.attribution import attribute_eot
from lab.patching import patch_eot
from lab.replay import replay, stream_inputs

CLEAN = (speechlike(4.0, seed=1), 24_000)
CORRUPTED = (speechlike(4.0, seed=5), 24_000)


def test_replay_gives_the_streamed_probabilities(tiny_model):
    inputs = stream_inputs(tiny_model, CLEAN)
    p = replay(tiny_model, inputs.audio_emb[None], inputs.text_in[None])[0]
    streamed = inputs.steps[[c for c in inputs.steps.columns if c.startswith("p_eot_")]].to_numpy()
    np.testing.assert_allclose(p.numpy(), streamed, atol=1e-5)


def test_patching_a_run_into_itself_gives_zero_everywhere(tiny_model):
    result = patch_eot(tiny_model, CLEAN, CLEAN, step=20, heads=True)
    assert len(result.frame) == 2 * (3 + 4) * 21  # layers x (components + heads) x steps 0..20
    assert (result.frame["effect"] == 0).all()
    assert result.p_clean == result.p_corrupted
    assert result.frame["effect_norm"].isna().all()  # no difference to explain


def test_patching_the_last_residual_at_the_decision_restores_the_clean_probability(tiny_model):
    """The last block's output at the decision step is all the head reads: patched, p is the clean p."""
    clean, corrupted = stream_inputs(tiny_model, CLEAN), stream_inputs(tiny_model, CORRUPTED)
    target = next(t for t in range(10, 25)
                  if abs(clean.steps["p_eot_2s"].iloc[t] - corrupted.steps["p_eot_2s"].iloc[t]) > 0.05)
    result = patch_eot(tiny_model, clean, corrupted, step=target, components=("out", "in"), first_step=5)
    f = result.frame.set_index(["layer", "component", "step"])
    assert f.loc[(1, "out", target), "p_patched"] == pytest.approx(result.p_clean, abs=1e-6)
    assert f.loc[(1, "out", target), "effect_norm"] == pytest.approx(1.0, abs=1e-4)
    assert f.loc[(1, "out", target - 1), "effect"] == 0  # the last block's output of an earlier step: unread
    assert f.loc[(0, "in", target), "effect"] != 0
    assert result.time_s == pytest.approx(corrupted.times_s[target])
    axes = result.figure()
    assert len(axes) == 2 and "Activation patching" in axes[0].get_title()


def test_patching_names_bad_input(tiny_model):
    with pytest.raises(ValueError, match="step= or time_s="):
        patch_eot(tiny_model, CLEAN, CLEAN)
    with pytest.raises(ValueError, match=r"unknown component 'mlp'; a block has \['attn.heads'"):
        patch_eot(tiny_model, CLEAN, CLEAN, step=3, components=("mlp",))
    with pytest.raises(ValueError, match="outside both runs"):
        patch_eot(tiny_model, CLEAN, CLEAN, step=999)
    with pytest.raises(ValueError, match="no end-of-turn head with horizon 7 s"):
        patch_eot(tiny_model, CLEAN, CLEAN, step=3, horizon_s=7.0)


def test_attribution_on_a_model_that_reads_only_the_present(tokenizer_path):
    """Blocks that write nothing (attention and MLP outputs zeroed): the decision at step t depends on the
    frame step t saw and the token it read, and on nothing else. Both methods must say exactly that."""
    model = make_model(tokenizer_path)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.out_proj.weight.zero_()
            block.mlp.linear_out.weight.zero_()
    a = attribute_eot(model, CLEAN, step=18, horizon_s=1.0)
    frames, tokens = a.frames.set_index("step"), a.tokens.set_index("step")
    assert frames.loc[18, "frame"] == 17 and frames.loc[18, "end_s"] == pytest.approx(18 / 12.5)
    assert (frames.drop(index=18)[["occlusion", "grad_x_input"]] == 0).all().all()
    assert frames.loc[18, "occlusion"] != 0 and frames.loc[18, "grad_x_input"] != 0
    assert (tokens.drop(index=18)[["occlusion", "grad_x_input"]] == 0).all().all()
    assert tokens.loc[18, "grad_x_input"] != 0


def test_attribution_reaches_no_further_than_the_receptive_field(tiny_model):
    """2 layers of context 16: the decision at step 45 reads steps 45 - 2 x 15 = 15 .. 45, nothing older."""
    a = attribute_eot(tiny_model, CLEAN, step=45)
    inputs = stream_inputs(tiny_model, CLEAN)
    assert a.p == pytest.approx(inputs.steps["p_eot_2s"].iloc[45], abs=1e-5)
    f = a.frames.set_index("step")
    assert (f.loc[:14, ["occlusion", "grad_x_input"]] == 0).all().all()
    assert (f.loc[15:, "grad_x_input"] != 0).sum() > 20
    assert (a.tokens.set_index("step").loc[:14, "occlusion"] == 0).all()
    top, bottom = a.figure()
    assert "Why p_eot_2s" in top.get_title() and bottom.get_xlabel() == "stream time (s)"
