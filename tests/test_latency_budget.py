"""One word's latency budget (lab.latency_budget): its parts add up to when the trainer's target stream
completes the word, and to when the embedded model delivers it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lab import latency_budget as lb  # noqa: E402
from lab import train  # noqa: E402
from lab.config import FRAME_RATE  # noqa: E402
from lab.tokenizer import Tokenizer  # noqa: E402


def test_budget_adds_up_to_where_the_target_stream_completes_each_word(tokenizer_path):
    tok = Tokenizer(tokenizer_path)
    words = [("set", 0.30, 0.45), ("a", 0.45, 0.50), ("timer", 0.50, 0.80), ("for", 0.83, 1.0),
             ("five", 1.7, 2.0), ("minutes", 2.03, 2.5)]
    for D in (2, 6):
        target, placed = train.text_targets(words, tok, 80, D)
        for (text, start, _), first in zip(words, placed):
            n = len(tok.encode_word(text))
            pushed = first - (int(start * FRAME_RATE) + D)
            budget = lb.word_budget(start, n, D, step_ms=0.0, pushed=pushed)
            completing_step = first + n  # the next token after its last piece
            assert target[completing_step] in (tok.pad_id, tok.epad_id) or tok.starts_word(int(target[completing_step]))
            # "training" alignment: step t runs at the end of frame t
            assert lb.delivered_s(budget, start) == pytest.approx((completing_step + 1) / FRAME_RATE)
        assert any(first > int(s * FRAME_RATE) + D for (_, s, _), first in zip(words, placed))  # a collision


def test_parts_and_alignments():
    b = lb.word_budget(0.30, pieces=3, delay_frames=6, step_ms=5.0)
    parts = dict(zip(b.component, b.ms))
    assert parts["frame quantum"] == pytest.approx(20.0)  # 0.30 s is in frame 3, which ends at 0.32 s
    assert parts["lookahead"] == 400 and parts["pieces"] == 160 and parts["completion"] == 80
    assert parts["alignment"] == 80 and parts["compute"] == 5 and parts["collision"] == 0
    scripts = lb.word_budget(0.30, pieces=3, delay_frames=6, step_ms=5.0, alignment="scripts")
    assert b.ms.sum() - scripts.ms.sum() == pytest.approx(80.0)
    assert lb.flushed_budget(6, 5.0).ms.sum() == 35.0
    with pytest.raises(ValueError, match="alignment"):
        lb.word_budget(0.3, 1, 6, alignment="late")
    with pytest.raises(ValueError, match="piece"):
        lb.word_budget(0.3, 0, 6)


def test_the_embedded_model_delivers_its_words_when_the_budget_says():
    import lab
    from lab.widgets import latency_figures, sample

    model = lab.load()
    clip = sample("timer")
    transcript = model.transcribe(clip.wav)
    gaps = []
    for i in range(len(clip.words)):
        budget, info = lb.budget_for(model, transcript, clip.words, i, step_ms=3.0)
        gaps.append(info["model_s"] - info["rule_s"])
    gaps = np.abs(np.array(gaps))
    # a trained model writes each word where its training put it; one frame off at most when it hesitates
    assert np.nanmax(gaps) <= 1 / FRAME_RATE + 1e-6 and np.mean(gaps < 1e-6) >= 0.8, gaps
    fig = latency_figures.budget_figure(budget, info, lb.flushed_budget(model.cfg.delay_frames, 3.0))
    ax = fig.axes[0]
    red = [line for line in ax.get_lines() if line.get_color() == "#d62728"]
    assert red and red[0].get_xdata()[0] == pytest.approx(info["start_s"] * 1000 + budget.ms.sum())
    assert len(ax.patches) == (budget.ms > 0).sum() + 1  # the parts, and the flush
