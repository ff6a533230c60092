"""Hook points: a frozen list of names, recording per step, attention patterns, and no effect on the outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import speechlike

import lab
from lab.hooks import match_names

# The public hook API of a 2-layer filterbank model, in the order a step reaches the hooks. A change here is
# a change of the API that notebooks and users rely on: update it on purpose, never by accident.
FROZEN_HOOK_NAMES = [
    "frontend.out",
    "text.embed",
    "input.embed",
    "blocks.0.in",
    "blocks.0.attn.q",
    "blocks.0.attn.k",
    "blocks.0.attn.v",
    "blocks.0.attn.pattern",
    "blocks.0.attn.heads",
    "blocks.0.attn.out",
    "blocks.0.mlp.out",
    "blocks.0.out",
    "blocks.1.in",
    "blocks.1.attn.q",
    "blocks.1.attn.k",
    "blocks.1.attn.v",
    "blocks.1.attn.pattern",
    "blocks.1.attn.heads",
    "blocks.1.attn.out",
    "blocks.1.mlp.out",
    "blocks.1.out",
    "final.norm",
    "text.logits",
    "eot.logits",
    "eot.probs",
]


def attached(model) -> dict[str, int]:
    return {name: len(p.fns) for name, p in model.hook_points().items() if p.fns}


def test_hook_names_are_frozen(tiny_model):
    assert tiny_model.hook_names() == FROZEN_HOOK_NAMES


def test_hooks_fire_in_the_listed_order(tiny_model):
    with lab.record(tiny_model) as rec:  # no pattern: everything
        tiny_model.transcribe((speechlike(0.5), 24_000))
    assert list(rec.values) == FROZEN_HOOK_NAMES  # first-fire order of a step
    assert len({len(v) for v in rec.values.values()}) == 1  # each fires once a step


def test_record_collects_one_value_per_step(tiny_model):
    with lab.record(tiny_model, "blocks.*.attn.pattern", "eot") as rec:
        t = tiny_model.transcribe((speechlike(3.0, 48_000), 48_000))
    assert rec.names == ["blocks.0.attn.pattern", "blocks.1.attn.pattern", "eot.logits", "eot.probs"]
    steps = len(t.steps)
    assert len(rec) == steps
    assert rec["eot.probs"].shape == (steps, 1, 4)
    np.testing.assert_allclose(rec["eot.probs"][:, 0], t.steps.filter(like="p_eot").to_numpy(), atol=1e-6)
    assert rec["blocks.1.attn.pattern"].shape == (steps, 1, tiny_model.cfg.num_heads, tiny_model.cfg.context)
    with pytest.raises(KeyError, match="text.logits"):
        rec["text.logits"]


def test_attention_rows_are_causal_banded_distributions(tiny_model):
    context = tiny_model.cfg.context
    with lab.record(tiny_model, "blocks.*.attn.pattern", "blocks.1.attn.q", "blocks.1.attn.k") as rec:
        t = tiny_model.transcribe((speechlike(3.0), 24_000))
    steps = len(t.steps)
    assert steps > 2 * context
    for layer in range(2):
        for head in range(tiny_model.cfg.num_heads):
            a = rec.attention(layer=layer, head=head)
            assert a.shape == (steps, steps)
            np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
            assert np.all(a >= 0)
            assert np.all(np.triu(a, k=1) == 0), "weight on a future key"
            assert np.all(np.tril(a, k=-context) == 0), "weight on a key older than the context"
            band = np.tril(np.triu(np.ones_like(a, dtype=bool), k=-(context - 1)), k=0)
            assert np.all(a[band] > 0)

    # The lag layout is undone correctly: the rows equal softmax(q . k / sqrt(hd)) over the band, computed
    # from the recorded (rotated) queries and keys of the same steps.
    q, k = rec["blocks.1.attn.q"][:, 0], rec["blocks.1.attn.k"][:, 0]  # (steps, H, hd)
    head = 2
    expected = np.zeros((steps, steps))
    for p in range(steps):
        lo = max(0, p - context + 1)
        scores = k[lo:p + 1, head] @ q[p, head] / np.sqrt(tiny_model.cfg.head_dim)
        expected[p, lo:p + 1] = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(rec.attention(layer=1, head=head), expected, atol=1e-5)


def test_attention_of_one_stream_in_a_batch(tiny_model):
    streams = tiny_model.streams(2)
    with lab.record(tiny_model, "blocks.0.attn.pattern") as rec:
        streams.feed([speechlike(2.0, seed=1), speechlike(1.0, seed=2)])
        streams.feed([None, speechlike(1.0, seed=3)])
    a0, a1 = rec.attention(0, 0, stream=0), rec.attention(0, 0, stream=1)
    assert a0.shape == (25, 25)
    assert a1.shape == (25, 25)  # stream 1 sat out the steps between its two chunks: no rows for them
    for a in (a0, a1):
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
        assert np.all(np.triu(a, k=1) == 0)
    assert not np.allclose(a0, a1)


def run_steps(model, steps=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(2, steps, model.cfg.d_model, generator=g)
    text = torch.randint(0, model.cfg.text_vocab_out, (2, steps), generator=g)
    cache = model.new_cache(2)
    outs = [model.step(emb[:, t], text[:, t], cache) for t in range(steps)]
    return torch.stack([o[0] for o in outs], 1), torch.stack([o[1] for o in outs], 1)


def test_recording_attention_does_not_change_the_outputs(tiny_model):
    """The explicit softmax path (pattern recorded) and the fused path agree, also after the ring wraps."""
    fused_logits, fused_p = run_steps(tiny_model)
    with lab.record(tiny_model, "blocks.*.attn.pattern") as rec:
        explicit_logits, explicit_p = run_steps(tiny_model)
    assert len(rec) == 50 > 3 * tiny_model.cfg.context
    torch.testing.assert_close(explicit_logits, fused_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit_p, fused_p, atol=1e-5, rtol=1e-5)

    audio = (speechlike(3.0, 16_000), 16_000)
    plain = tiny_model.transcribe(audio)
    with lab.record(tiny_model, "blocks.*.attn.pattern", "text.logits"):
        recorded = tiny_model.transcribe(audio)
    assert recorded.steps["token"].tolist() == plain.steps["token"].tolist()
    assert recorded.words == plain.words


def test_to_frame_has_one_row_per_hook_step_and_stream(tiny_model):
    with lab.record(tiny_model, "eot.probs", "blocks.0.out") as rec:
        tiny_model.streams(2).feed([speechlike(1.0), speechlike(0.5)])
    df = rec.to_frame()
    assert list(df.columns) == ["hook", "step", "stream", "shape", "norm", "value"]
    assert set(df["hook"]) == {"eot.probs", "blocks.0.out"}
    # hooks x steps: stream 0 ran 12 steps (1.0 s), stream 1 ran 6 and sat out the other 6, which are left out
    assert len(df) == 2 * (12 + 6)
    assert df[(df.hook == "eot.probs") & (df.stream == 1)]["step"].tolist() == list(range(6))
    eot = df[(df.hook == "eot.probs") & (df.stream == 0)]
    assert eot["step"].tolist() == list(range(12))
    assert eot["shape"].iloc[0] == (4,)
    np.testing.assert_allclose(eot["norm"], [np.linalg.norm(v) for v in eot["value"]], rtol=1e-6)


def test_unknown_pattern_lists_the_known_names(tiny_model):
    with pytest.raises(ValueError, match="blocks.9.attn.pattern") as err:
        with lab.record(tiny_model, "eot", "blocks.9.attn.pattern"):
            pass
    assert "eot.probs" in str(err.value) and "blocks.1.mlp.out" in str(err.value)
    assert attached(tiny_model) == {}  # nothing half-attached
    assert match_names(FROZEN_HOOK_NAMES, ("blocks.1",)) == FROZEN_HOOK_NAMES[12:21]  # bare prefix
    assert match_names(FROZEN_HOOK_NAMES, ("*.attn.q", "blocks.0.attn.q")) == ["blocks.0.attn.q", "blocks.1.attn.q"]


def test_hooks_are_detached_after_the_block(tiny_model):
    with lab.record(tiny_model, "blocks.*.attn.pattern", "eot") as rec:
        assert attached(tiny_model) == {"blocks.0.attn.pattern": 1, "blocks.1.attn.pattern": 1, "eot.logits": 1,
                                        "eot.probs": 1}
    assert attached(tiny_model) == {}
    with pytest.raises(RuntimeError, match="inside"):
        with lab.record(tiny_model, "text.logits"):
            raise RuntimeError("inside")
    assert attached(tiny_model) == {}
    tiny_model.transcribe((speechlike(0.5), 24_000))
    assert len(rec) == 0  # a finished recording collects nothing more
