"""The widgets' Python side: state from events, the PCM message handler, error display, sources, views.

The browser's JavaScript is exercised for real in test_browser.py and PortAudio in test_microphone.py; here
the page's PCM messages are built in the test (the same content and buffers that browser_mic.js sends) and
handed to the widget's own message dispatch. `ChunkSource` below is a minimal real AudioSource that
delivers given chunks (used where a sound file cannot hold what the test needs, e.g. int8 samples).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
import torch

import lab
from lab.events import EndOfTurn, Step, Word
from lab.metrics import normalize
from lab.widgets import (
    AttentionViewer,
    BrowserMicrophone,
    FileMicrophone,
    LiveState,
    LiveTranscriber,
    Microphone,
    decode_pcm,
    figures,
    resolve_source,
    sample,
    tables,
)
from lab.widgets.notebooks import output_types, parameters_cell, set_parameters
from lab.widgets.sources import AudioSource

HORIZONS = (0.5, 1.0, 2.0, 3.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 5 M model on a shared 2-core machine: one torch thread. Two threads that must wait for a busy core
    spin, and run the same steps tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def embedded_model():
    return lab.load()


def step(i, p=0.1):
    return Step(i, (i + 1) * 0.08, 3, "", {h: p for h in HORIZONS}, 1.0)


def word(text, start, emitted):
    return Word(text, start, start + 0.08, emitted)


# ------------------------------------------------------------------------------------------------ state


def test_state_keeps_steps_words_and_decisions():
    s = LiveState(HORIZONS, delay_frames=6)
    calls = s.apply([step(0), step(1, 0.7), word("set", 0.1, 0.6), EndOfTurn(0.16, 0.7, "p")])
    assert s.times == [0.08, 0.16] and s.probs[1] == [0.7] * 4
    assert [w.text for w in s.words] == ["set"] and len(s.decisions) == 1
    assert calls == [s.decisions[0]]  # words came out since the last flush: flush
    s.add_flush(0.16, 12.5, 7, [word("timer", 0.3, 0.9)])
    assert s.words_since_flush == 0
    assert s.apply([EndOfTurn(0.3, 0.8, "p")]) == []  # nothing left to drain
    s.apply([word("now", 0.4, 1.0)])
    assert s.apply([EndOfTurn(1.1, 0.8, "p")], flushing=True) == []  # never a flush from a flush
    assert s.now_s == 0.16


def test_transcript_html_escapes_shows_timestamps_and_turn_marks():
    s = LiveState(HORIZONS, delay_frames=6)
    s.apply([word("<b>", 0.24, 0.8), word("five", 0.5, 1.0)])
    s.apply([word("minutes", 0.7, 1.2)], flushing=True)
    s.add_flush(1.1, 9.0, 7, [word("minutes", 0.7, 1.2)])
    s.apply([word("thanks", 2.0, 2.6)])
    html = s.transcript_html()
    assert "&lt;b&gt;" in html and ">&lt;b&gt;<sub" in html  # the word escaped, not markup
    assert " 0.24</sub>" in html and "end of turn 1.10 s" in html
    assert html.index("minutes") < html.index("end of turn") < html.index("thanks")
    assert "dsm-flushed" in html
    short = s.transcript_html(max_words=1)  # only the last word, and no mark from before it
    assert "thanks" in short and "five" not in short and "end of turn" not in short


def test_flush_html_and_meter_payload():
    s = LiveState(HORIZONS, delay_frames=6, policy_horizon_s=2.0, threshold=0.6)
    assert "none yet" in s.flush_html() and "560 ms" in s.flush_html()
    s.apply([step(i, p=i / 200) for i in range(200)] + [EndOfTurn(2.0, 0.6, "p"), EndOfTurn(15.0, 0.7, "p")])
    s.add_flush(15.0, 20.0, 7, [word("red", 14.0, 15.1)])
    assert "20.0 ms" in s.flush_html() and "red" in s.flush_html()
    m = s.meter_payload(window_s=5.0)
    assert m["times"][0] >= s.now_s - 5.0 and m["times"][-1] == s.now_s
    assert len(m["probs"]) == 4 and len(m["probs"][0]) == len(m["times"])
    assert m["decisions"] == [15.0] and m["policy_index"] == 2 and m["threshold"] == 0.6
    frame = s.steps_frame()
    assert list(frame.columns) == ["time_s", "p_eot_0.5s", "p_eot_1s", "p_eot_2s", "p_eot_3s", "compute_ms"]
    assert s.flushes_frame().loc[0, "realtime_wait_ms"] == pytest.approx(560.0)


# -------------------------------------------------------------------------------------------- PCM in


def test_decode_pcm_int16_and_float32():
    x = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    samples, rate = decode_pcm({"dtype": "int16", "sample_rate": 48000}, [x.tobytes()])
    assert rate == 48000 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, [0, 0.5, -1, 32767 / 32768])
    f = np.array([0.25, -0.5], dtype=np.float32)
    samples, _ = decode_pcm({"dtype": "float32", "sample_rate": 44100}, [memoryview(f.tobytes())])
    np.testing.assert_array_equal(samples, f)


@pytest.mark.parametrize("content, buffers, message", [
    ({"dtype": "int8", "sample_rate": 16000}, [b"\0\0"], "dtype"),
    ({"dtype": "int16", "sample_rate": 0}, [b"\0\0"], "sample_rate"),
    ({"dtype": "int16", "sample_rate": 16000}, [], "one binary buffer"),
    ({"dtype": "int16", "sample_rate": 16000}, [b"\0\0\0"], "whole number"),
])
def test_decode_pcm_names_what_is_wrong(content, buffers, message):
    with pytest.raises(ValueError, match=message):
        decode_pcm(content, buffers)


def pcm(seq, value, capture="c1", dtype="int16"):
    """One message as browser_mic.js sends it: 1920 samples of `value`, numbered `seq` in `capture`."""
    block = np.full(1920, value, dtype=np.int16 if dtype == "int16" else np.float32)
    return {"type": "pcm", "dtype": dtype, "sample_rate": 48000, "seq": seq, "capture": capture}, [block.tobytes()]


def test_browser_source_takes_pcm_messages_through_the_widget():
    """The page's messages, dispatched by the widget itself (ipywidgets' custom-message path)."""
    src = BrowserMicrophone()
    got = []
    src.start(lambda chunk, rate: got.append((chunk, rate)))
    assert src.widget.capturing is True
    send = src.widget._handle_custom_msg
    send(*pcm(0, 8192))
    send(*pcm(1, 0.5, dtype="float32"))
    assert [(float(c[0]), r) for c, r in got] == [(0.25, 48000), (0.5, 48000)]
    assert src.chunks == 2 and src.block_size == 1920 and src.seconds() == pytest.approx(0.08)
    send({"type": "pcm", "dtype": "int16", "sample_rate": 48000, "seq": 2}, [b"\0"])  # half a sample
    assert src.bad_messages == 1 and "whole number" in src.error
    send({"type": "error", "message": "NotAllowedError: denied"}, [])
    assert src.error == "NotAllowedError: denied"
    src.stop()
    assert src.widget.capturing is False
    send(*pcm(2, 100))
    assert len(got) == 2  # stopped: ignored


def test_browser_source_puts_blocks_back_in_order_and_counts_the_lost():
    src = BrowserMicrophone(reorder_blocks=2)
    got = []
    src.start(lambda chunk, rate: got.append(int(round(chunk[0] * 32768))))
    send = src.widget._handle_custom_msg
    for seq in (0, 2, 1):  # 2 overtook 1 on the way
        send(*pcm(seq, seq))
    assert got == [0, 1, 2] and src.reordered == 1 and src.overflows == 0
    for seq in (5, 6):  # 3 and 4 are late: wait for them ...
        send(*pcm(seq, seq))
    assert got == [0, 1, 2]
    send(*pcm(7, 7))  # ... but not for more than two blocks: they are lost
    assert got == [0, 1, 2, 5, 6, 7] and src.overflows == 2
    send(*pcm(3, 3))  # too late now
    assert got[-1] == 7 and src.overflows == 3
    send(*pcm(0, 10, capture="c2"))  # Start again in the page: numbering starts over
    assert got[-1] == 10
    src.stop()


def test_browser_source_says_when_no_page_shows_it():
    src = BrowserMicrophone()
    assert "waiting for a page" in src.describe()
    src.widget.page_status = "capturing"
    src.widget.page_error = "no microphone: NotFoundError"
    assert src.error == "no microphone: NotFoundError" and src.describe().startswith("browser:")


# ------------------------------------------------------------------------------------------- sources


class ChunkSource(AudioSource):
    """Delivers the given chunks at once from the calling thread, then ends (a finite source)."""

    kind, finite = "chunks", True

    def __init__(self, chunks, rate=24_000):
        super().__init__()
        self.items, self.sample_rate, self.device = chunks, rate, "test chunks"

    def _open(self):
        for c in self.items:
            self._deliver(c, self.sample_rate)
        self.done.set()

    def _close(self):
        pass


def test_file_microphone_plays_in_real_time(tmp_path):
    path = tmp_path / "half.wav"
    sf.write(path, np.zeros(12_000, dtype=np.float32), 24_000)  # 0.5 s
    mic = FileMicrophone(path, tail_s=0.0)
    got = []
    t0 = time.perf_counter()
    mic.start(lambda chunk, rate: got.append(len(chunk)))
    assert mic.done.wait(5)
    assert time.perf_counter() - t0 >= 0.4  # paced like a microphone, not all at once
    assert sum(got) == 12_000 and got[0] == 1920 and mic.overflows == 0
    assert "file: half.wav" in mic.describe() and "24000 Hz" in mic.describe() and "80 ms" in mic.describe()
    with pytest.raises(ValueError, match="speed"):
        FileMicrophone(path, speed=0)


def test_resolve_source_checks_the_name():
    with pytest.raises(ValueError, match="source must be one of"):
        resolve_source("usb")
    assert resolve_source("browser") == ("browser", "")


def test_microphone_switches_sources_and_keeps_the_sink():
    mic = Microphone("file", file=sample("weather").wav, speed=50)
    got = []
    mic.start(lambda chunk, rate: got.append(rate))
    mic.use("browser")
    assert mic.kind == "browser" and mic.page.children == (mic.source.widget,)
    assert mic.source.widget.capturing  # took over the running sink
    assert "waiting for a page" in mic.status_line()
    mic.use("file")
    assert mic.page.children == () and mic.picker.value == "file"
    assert mic.source.done.wait(5) and got
    mic.stop()


# ---------------------------------------------------------------------------------------------- live


def test_live_transcriber_on_a_file_flushes_and_shows_words(embedded_model):
    clip = sample("weather")
    live = LiveTranscriber(embedded_model, Microphone("file", file=clip.wav, speed=8))
    live.start()
    assert live.wait(60)
    assert live.state.error is None and not live.running
    words = live.words_frame()
    assert set(clip.text.split()) <= {normalize(w) for w in words.word}, list(words.word)
    assert len(live.flushes_frame()) >= 1 and (live.flushes_frame().flush_ms > 0).all()
    assert "What" in live.transcript.value and "flush" in live.flush_line.value
    assert live.meter.times and len(live.meter.probs) == len(HORIZONS)
    fig = live.figure()
    assert fig.axes[0].get_title() and fig.axes[0].get_xlabel()


def test_live_transcriber_with_the_vetoed_silence_policy(embedded_model):
    clip = sample("turn")  # two sentences: one end of turn at the end
    policy = lab.VetoedSilenceEndOfTurn(horizon_s=2.0, threshold=0.7, min_silence_s=0.45)
    live = LiveTranscriber(embedded_model, Microphone("file", file=clip.wav, speed=8), end_of_turn=policy)
    assert (live.horizon_s, live.threshold) == (2.0, 0.7)  # the meter draws the policy's head and threshold
    live.start()
    assert live.wait(60) and live.state.error is None
    assert set(clip.text.split()) <= {normalize(w) for w in live.words_frame().word}
    assert live.streamer.state.policies[0].name == policy.name and len(live.flushes_frame()) >= 1


def test_errors_in_the_model_loop_are_shown(embedded_model):
    bad = np.zeros(1920, dtype=np.int8)  # the streamer takes int16/int32/float samples only
    live = LiveTranscriber(embedded_model, Microphone("file", file=sample("weather").wav))
    live.mic.source = ChunkSource([np.zeros(1920, dtype=np.float32), bad])
    live.start()
    assert live._finished.wait(10)
    assert "model loop stopped: TypeError" in live.state.error
    assert "dsm-error" in live.error_line.value and "int8" in live.error_line.value


# ------------------------------------------------------------------------------------- views, tables


def test_attention_viewer_sends_the_selected_head(embedded_model):
    clip = sample("weather")
    v = AttentionViewer.from_run(embedded_model, str(clip.wav))
    L, H, T, _ = v.patterns.shape
    assert (L, H) == (embedded_model.cfg.num_layers, embedded_model.cfg.num_heads) and v.n_steps == T
    np.testing.assert_allclose(v.patterns.sum(-1), 1.0, atol=1e-4)  # each row is a distribution
    assert len(v.matrix) == T * T * 4 and v.words[0]["text"] == "what"
    v.head = 3
    np.testing.assert_array_equal(np.frombuffer(v.matrix, np.float32).reshape(T, T), v.patterns[v.layer, 3])
    v.layer = 99  # out of range: clamped, not an error
    assert v.layer == L - 1
    assert v.figure(step=10).axes[0].get_xlabel() == "audio time (s)"
    with pytest.raises(ValueError, match="layers, heads, steps, steps"):
        AttentionViewer(np.zeros((2, 3, 4)), np.zeros(10), 24_000, 6)


def test_figures_are_titled_and_labelled(embedded_model):
    clip = sample("timer")
    t = embedded_model.transcribe((clip.audio, clip.sample_rate))
    for fig in (figures.delay_timeline(clip.audio, clip.sample_rate, clip.words, t.words, 0.48),
                figures.delay_timeline(clip.audio, clip.sample_rate, clip.words, t.words, 0.48, spectrogram=True),
                figures.two_streams(clip.audio, clip.sample_rate, clip.words, t.steps, 6),
                figures.session_figure(LiveState(HORIZONS, 6))):
        assert fig.axes[0].get_title() and fig.axes[-1].get_xlabel()
    sweep = tables.pd.DataFrame({"delay_frames": [2, 6], "wer": [0.3, 0.1], "latency_p50_s": [0.3, 0.6],
                                 "latency_p90_s": [0.4, 0.8]})
    assert figures.sweep_figure(sweep).axes[0].get_ylabel() == "WER (%)"


def test_step_table_follows_the_alignment(embedded_model):
    clip = sample("weather")
    t = embedded_model.transcribe((clip.audio, clip.sample_rate))
    training = tables.step_table(t, 6, "training")
    scripts = tables.step_table(t, 6, "scripts")
    assert training.loc[0, "audio it sees"] == "initial embedding"
    assert training.loc[1, "audio it sees"].startswith("frame 0 ")  # step t sees frame t-1
    assert training.loc[2, "audio it sees"].startswith("frame 1 ")
    assert scripts.loc[0, "audio it sees"] == "initial embedding"  # frame 0 masked by the initial embedding
    assert scripts.loc[2, "audio it sees"].startswith("frame 2 ")  # step t sees frame t
    assert training.loc[1, "text fed back"] == training.loc[0, "text it writes"]
    words = tables.word_table(clip.words, t.words)
    assert {"timestamp error (s)", "emission latency (s)"} <= set(words.columns) and len(words) >= 4


def test_samples_and_notebook_parameters(tmp_path):
    assert {s.name for s in tables.all_samples()} >= {"weather", "timer", "lights", "turn"}
    with pytest.raises(FileNotFoundError, match="samples here: .*weather"):
        sample("nope")
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("A = 1")])
    with pytest.raises(ValueError, match="parameters"):
        parameters_cell(nb)
    nb.cells[1].metadata["tags"] = ["parameters"]
    set_parameters(nb, {"A": 2, "S": "file"})
    assert nb.cells[1].source.endswith("A = 2\nS = 'file'\n") and nb.cells[1].source.startswith("A = 1")
    assert output_types(nb) == {}


def test_turn_explorer_moves_operating_points(embedded_model, tmp_path, monkeypatch):
    from lab import evaluate
    from lab.widgets import turnlab

    folder = turnlab.turn_items(folder=tables.samples_dir())
    results = evaluate.run_items(embedded_model, folder, tail_s=2.0)
    explorer = turnlab.TurnExplorer(results, item=1)
    assert [p.kind for p in explorer.policies] == ["semantic", "silence"]
    before = explorer.table.value
    slider = explorer.sliders[explorer.semantic.name]
    slider.value = slider.options[-1][1]  # the highest threshold: later decisions, fewer early cuts
    assert explorer.table.value != before and f"{slider.value:g}" in explorer.table.value
    fig = explorer.figure()
    assert len(fig.axes) >= 2 and all(ax.get_title() for ax in fig.axes[:2])
    monkeypatch.setenv("DSM_LAB_CACHE", str(tmp_path))
    made = turnlab.turn_items(2, seed=1)
    assert len(list(made.glob("*.json"))) == 2 and made.is_relative_to(tmp_path)
    with pytest.raises(FileNotFoundError, match="no items"):
        turnlab.turn_items(folder=tmp_path / "empty")


def test_latency_figures_from_tables():
    from lab.widgets import latency_figures as lf

    words = tables.pd.DataFrame({"latency_stream_s": [0.5, 0.6], "latency_s": [0.52, 0.7]})
    summary = tables.pd.DataFrame({"decision": ["reference"] * 2, "variant": ["none", "flush"],
                                   "latency_p50_s": [0.4, 0.05], "latency_p90_s": [0.45, 0.06],
                                   "floor_s": [0.05] * 2, "wait_s": [0.48] * 2})
    flushes = [{"delay_frames": d, "flush_ms": 5.0 * d, "floor_ms": 6.0 * d, "wait_ms": 80.0 * d, "unmute_ms": 6.0 * d}
               for d in (2, 6)]
    batch = [{"batch_size": b, "step_ms_p50": 5.0 + b, "per_stream_ms": (5.0 + b) / b} for b in (1, 4)]
    for fig in (lf.emission_figure(words, 0.48), lf.flush_figure(summary), lf.flush_delay_figure(flushes),
                lf.batch_figure(batch)):
        ax = fig.axes[0]
        assert ax.get_title() and "(" in ax.get_xlabel() + ax.get_ylabel()  # units in the labels


def test_strip_outputs(tmp_path):
    import nbformat

    from lab.widgets.notebooks import strip_outputs

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert strip_outputs(tmp_path / "n.ipynb") and not strip_outputs(tmp_path / "n.ipynb")
    assert nbformat.read(tmp_path / "n.ipynb", 4).cells[0].outputs == []


def test_delay_timeline_widget_switches_view_and_window(embedded_model):
    from lab.widgets import DelayTimeline

    clip = sample("lights")
    timeline = DelayTimeline(clip, embedded_model.transcribe(clip.wav), 0.48)
    timeline.view.value = "spectrogram"
    timeline.window.value = (0.5, 1.5)
    fig = timeline.figure()
    assert fig.axes[0].get_ylabel() == "frequency (Hz)" and fig.axes[-1].get_xlim() == (0.5, 1.5)


def test_browser_source_with_no_page_says_why(embedded_model):
    """A headless run shows the browser widget to nobody: after a few seconds without audio, one line says
    why and the file source is offered."""
    live = LiveTranscriber(embedded_model, Microphone("browser"))
    live.start()
    try:
        live._started_at -= 10  # as if it had been waiting for ten seconds
        live._render(force=True)
        assert "no audio from the browser" in live.error_line.value and "file source" in live.error_line.value
        assert "waiting for a page" in live.mic.status.value
        assert not live.wait(1)  # a live source: nothing to wait for, and it says so
    finally:
        live.stop()
    assert not live.running


def test_delay_sweep_needs_two_models_and_sorts_by_delay(tmp_path, monkeypatch, capsys):
    """Two copies of the embedded model stand in for the sweep (one with D rewritten in its config: the
    weights do not depend on D), in a temp models folder."""
    import json
    import shutil

    import lab.checkpoint as checkpoint

    embedded = checkpoint.default_model_dir()
    monkeypatch.setattr(checkpoint, "MODELS_DIR", tmp_path)
    clips = tables.all_samples(1)
    assert tables.delay_sweep(clips) is None and "delay sweep skipped" in capsys.readouterr().out
    assert figures.sweep_figure(None) is None
    for d in (12, 6):
        folder = tmp_path / f"dsm-tiny-en-d{d}"
        shutil.copytree(embedded, folder)
        config = json.loads((folder / "config.json").read_text())
        config["config"]["delay_frames"] = d
        (folder / "config.json").write_text(json.dumps(config))
    (tmp_path / "dsm-tiny-en-dx").mkdir()  # not a sweep member
    assert [p.name for p in tables.sweep_models()] == ["dsm-tiny-en-d6", "dsm-tiny-en-d12"]
    table = tables.delay_sweep(clips)
    assert list(table.delay_frames) == [6, 12] and list(table.delay_s) == [0.48, 0.96]
    assert {"wer", "latency_p50_s", "latency_p90_s"} <= set(table.columns)
