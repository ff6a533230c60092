"""What a reader of the notebooks sees: legends off the data, labels inside their figure, one colour per
policy in every figure, tables with the columns that matter and one number format, benchmarks that say
what they measured. (The browser-only parts, keys and canvases, are in test_browser.py.)"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from test_turns import constructed_result  # noqa: E402

from lab import benchmarks, evaluate, plots  # noqa: E402
from lab.turns import EMAPolicy, ThresholdPolicy  # noqa: E402
from lab.widgets import figures, latency_figures, turnlab  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def extent(artist, fig):
    """Where `artist` is drawn, in pixels (the figures come back closed: an Agg canvas draws them again)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return artist.get_window_extent(canvas.get_renderer())


def test_attention_figure_legend_sits_below_the_bars_and_words_are_readable():
    rate, T = 24_000, 30
    audio = np.sin(np.arange(int(T / 12.5 * rate)) / 20.0).astype(np.float32)
    matrix = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    words = [{"text": "set", "start": 0.3, "end": 0.6}, {"text": "timer", "start": 0.7, "end": 1.1}]
    fig = figures.attention_over_audio(matrix, audio, rate, step=20, delay_frames=6, words=words)
    ax = fig.axes[0]
    legend, plot_area = extent(ax.get_legend(), fig), extent(ax.patch, fig)
    assert legend.y1 <= plot_area.y0  # under the axes, not over the first frames' bars
    assert 0 <= legend.y0 and legend.x0 >= 0  # and still inside the figure
    labels = [t for t in ax.texts if t.get_text() in ("set", "timer")]
    assert len(labels) == 2 and min(t.get_fontsize() for t in labels) >= 9


def test_sweep_figure_keeps_every_label_inside_the_axes():
    sweep = pd.DataFrame({"delay_frames": [2, 6, 12], "wer": [0.42, 0.12, 0.08],
                          "latency_p50_s": [0.21, 0.55, 1.02], "latency_p90_s": [0.3, 0.7, 1.2]})
    fig = figures.sweep_figure(sweep)
    ax = fig.axes[0]
    box = extent(ax.patch, fig)
    labels = [t for t in ax.texts if t.get_text().startswith("D = ")]
    assert [t.get_text() for t in labels] == ["D = 2", "D = 6", "D = 12"]
    for t in labels:
        e = extent(t, fig)
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, t.get_text()


def test_a_policy_has_one_colour_in_the_trace_and_on_the_tradeoff_plot():
    r = constructed_result()
    policies = [ThresholdPolicy(2.0, 0.5), EMAPolicy(2.0)]
    ax_t = plots.plot_eot_trace(r, turnlab.decisions(r, policies))
    ax_c = plots.plot_eot_tradeoff(turnlab.sweep_all([r], policies[::-1]))  # other order, same colours
    heads = {to_hex(line.get_color()) for line in ax_t.get_lines() if line.get_label().startswith("p_eot")}
    for p in policies:
        decision = next(line for line in ax_t.get_lines() if line.get_label() == f"decision: {p.name}")
        curve = next(line for line in ax_c.get_lines() if line.get_label().startswith(p.name))
        assert to_hex(decision.get_color()) == to_hex(curve.get_color()) == to_hex(plots.policy_color(p.name))
        assert to_hex(curve.get_color()) not in heads
    assert plots.policy_color(policies[0].name) != plots.policy_color(policies[1].name)


def test_drill_down_table_leads_with_text_and_probabilities():
    cuts = evaluate.early_cuts([constructed_result()], ThresholdPolicy(2.0, 0.5))
    assert len(cuts.columns) > 15  # the full table: more than a notebook shows at once
    table = turnlab.cut_table(cuts)
    assert list(table.columns) == turnlab.CUT_COLUMNS + ["p_eot_1s", "p_eot_2s"]
    row = table.iloc[0]
    assert (row.said_so_far, row.transcript_so_far, row.still_to_say) == ("call my", "call", "mother")
    assert row.p_eot_2s == pytest.approx(0.9) and row.silence_so_far_s == pytest.approx(0.32)


def test_transcription_summary_is_a_rounded_table_not_a_dict():
    table = turnlab.summary_table([constructed_result()])
    assert isinstance(table, pd.DataFrame) and len(table) == 1
    assert table.wer.iloc[0] == 0 and table["items"].iloc[0] == 1
    assert all(v == round(v, 3) for v in table.select_dtypes("number").iloc[0] if not np.isnan(v))


def test_slider_labels_have_one_format_and_room_for_their_name():
    assert turnlab.fixed_decimals([0.1, 0.125, 0.15]) == 3
    assert turnlab.fixed_decimals([0.1, 0.15, 2.5]) == 2 and turnlab.fixed_decimals([1.0, 2.0]) == 0
    explorer = turnlab.TurnExplorer([constructed_result()], semantic=ThresholdPolicy(2.0, 0.5),
                                    baseline=EMAPolicy(2.0))
    for slider in explorer.sliders.values():
        labels = [label for label, _ in slider.options]
        assert len({len(label.split(".")[1]) for label in labels}) == 1, labels  # "0.050", "0.075", "0.100"
        assert slider.style.description_width == "initial"
    html = explorer.table.value
    assert all(f"<td>{p.name}</td>" in html for p in explorer.policies)
    assert "<td>0.500</td>" in html  # the threshold, written 0.500 like its neighbours, not 0.5


def test_batch_benchmark_measures_at_least_the_sizes_asked_and_says_which_were_slow(tiny_model, monkeypatch):
    monkeypatch.setattr(benchmarks, "REALTIME_MS", 0.0)  # a budget no machine meets: every size is slow
    rows = benchmarks.batch(tiny_model, sizes=(1, 2, 3, 4), steps=2, threads=1, at_least=2, progress=True)
    assert [r["batch_size"] for r in rows] == [1, 2]  # two measured regardless, then stopped
    note = latency_figures.batch_note(rows, (1, 2, 3, 4))
    assert "Measured B = 1, 2" in note and "No size kept up" in note
    assert "Not measured after a slow size: B = 3, 4" in note
    table = latency_figures.batch_table(rows)
    assert {"benchmark", "threads", "dtype"}.isdisjoint(table.columns) and "step_ms_p50" in table
    assert (table.step_ms_p50 == table.step_ms_p50.round(3)).all()


def test_batch_note_names_the_slow_sizes():
    rows = [{"batch_size": b, "step_ms_p50": ms, "realtime": ms < 80, "threads": 2, "dtype": "float32"}
            for b, ms in ((1, 4.0), (8, 30.0), (64, 120.4))]
    note = latency_figures.batch_note(rows, (1, 8, 64))
    assert "B up to 8" in note and "Slower than real time: B = 64 (120 ms)" in note and "Not measured" not in note


def test_flush_benchmark_shows_its_progress(tiny_model, capsys):
    rows = benchmarks.flush(tiny_model, delays=(1, 2), trials=1, warm_s=1.0, progress=True)
    assert [r["delay_frames"] for r in rows] == [1, 2]
    err = capsys.readouterr().err  # tqdm writes its bar to stderr outside a notebook
    assert "delays D" in err and "2/2" in err


def test_frame_figure_draws_what_the_frontend_computes(tiny_model):
    import torch

    from lab.widgets import frame_figure

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(24_000)).astype(np.float32)
    fig = frame_figure(tiny_model, audio, 24_000, frame=4)
    _, ax_e, ax_d = fig.axes[:3]
    frames = torch.from_numpy(audio[: 12 * 1920].reshape(1, 12, 1920))
    with torch.no_grad():  # the whole-sequence path: frame 4 with the tail of frame 3 before it
        expected = tiny_model.frontend(frames)[0, 4].numpy()
    np.testing.assert_allclose([p.get_height() for p in ax_d.patches], expected, rtol=1e-4, atol=1e-5)
    assert ax_e.images[0].get_array().shape == (tiny_model.frontend.n_filters, 8)
    with pytest.raises(ValueError, match="24 kHz"):
        frame_figure(tiny_model, audio, 16_000, frame=0)
