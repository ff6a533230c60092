"""Figures: titled, labelled with units, and drawing what they claim (spans, traces, decisions, curves)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from test_turns import constructed_result  # noqa: E402

from lab import plots  # noqa: E402
from lab.turns import Trace  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def spans(ax, color):
    """The shaded vertical spans of one colour (axvspan draws a Rectangle, or a Polygon in older matplotlib)."""
    rgb = to_rgba(color)[:3]
    return [p for p in ax.patches if tuple(p.get_facecolor()[:3]) == pytest.approx(rgb)]


def test_eot_trace_draws_heads_words_pauses_and_decisions():
    r = constructed_result()
    ax = plots.plot_eot_trace(r, {"p_eot_2s > 0.5": [1.12, 2.56], "silence 0.3 s": [1.1]})
    assert ax.get_title() == "End-of-turn probabilities: made"
    assert "(s)" in ax.get_xlabel() and ax.get_ylabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"p_eot_1s", "p_eot_2s", "decision: p_eot_2s > 0.5", "decision: silence 0.3 s"} <= set(labels)
    head = next(line for line in ax.get_lines() if line.get_label() == "p_eot_2s")
    np.testing.assert_allclose(head.get_ydata(), r.trace.p_eot[2.0])
    decision_lines = [line for line in ax.get_lines() if list(line.get_xdata()) in ([1.12, 1.12], [2.56, 2.56])]
    assert len(decision_lines) == 2
    assert len(spans(ax, plots.PAUSE_COLORS["mid_turn"])) == 1  # mid-turn and end-of-turn pauses: two colours
    assert len(spans(ax, plots.PAUSE_COLORS["end_of_turn"])) == 1
    assert len(spans(ax, "0.45")) == 3  # one band per reference word
    assert [t.get_text() for t in ax.texts] == ["call", "my", "mother"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"mid-turn pause", "end-of-turn pause", "words (reference)"} <= set(legend)


def test_eot_trace_of_a_model_without_heads_says_so():
    ax = plots.plot_eot_trace(trace=Trace(np.array([0.08, 0.16]), {}), title="baselines only")
    assert ax.get_title() == "baselines only"
    assert any("no end-of-turn heads" in t.get_text() for t in ax.texts)
    with pytest.raises(ValueError, match="trace"):
        plots.plot_eot_trace()


def test_tradeoff_curves_share_one_axes():
    semantic = pd.DataFrame({"policy": "threshold p_eot_2s", "kind": "semantic", "value": [0.5, 0.7, 0.9],
                             "early_cut_rate": [0.3, 0.1, 0.02], "latency_p50_s": [0.2, 0.4, 0.9]})
    silence = pd.DataFrame({"policy": "silence (energy VAD)", "kind": "silence", "value": [0.3, 1.0, 2.0],
                            "early_cut_rate": [0.5, 0.3, 0.0], "latency_p50_s": [0.3, 1.0, np.nan]})
    ax = plots.plot_eot_tradeoff(pd.concat([semantic, silence]))
    assert ax.get_title() and "(s)" in ax.get_xlabel() and "%" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"threshold p_eot_2s (semantic)", "silence (energy VAD) (silence)"}
    np.testing.assert_allclose(lines["threshold p_eot_2s (semantic)"].get_ydata(), [30, 10, 2])
    assert list(lines["silence (energy VAD) (silence)"].get_xdata()) == [0.3, 1.0]  # no latency: not drawn
    assert lines["silence (energy VAD) (silence)"].get_linestyle() == "--"
    assert len(ax.patches) == 1  # the 0.2-1.5 s band

    fig, ax2 = plt.subplots()
    assert plots.plot_eot_tradeoff({"mine": semantic}, ax=ax2, latency_band_s=None) is ax2
    assert [line.get_label() for line in ax2.get_lines()] == ["mine (semantic)"] and not ax2.patches
