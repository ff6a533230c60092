"""Live transcription: a microphone, the model in a background thread, and what it shows as it runs.

    live = LiveTranscriber(model, Microphone("auto"))
    live.start()       # returns at once: the model runs in a thread, the cell is free
    live               # microphone line, transcript, end-of-turn meter, flush indicator, errors
    live.wait(30)      # a file source: wait until it has played (a live source: returns at once)
    live.stop()

The thread takes the source's chunks from a queue, resamples them to 24 kHz (so that switching to a source
with another rate needs no reset), feeds the streamer, and on each end-of-turn decision calls
`streamer.flush()` and times it: the flush latency. Any exception stops the loop and is shown in the widget.
Widget traits are set from the thread at most every `refresh_s` (ipykernel sends them from any thread).
"""

from __future__ import annotations

import html
import queue
import threading
import time
import traceback
from pathlib import Path

import anywidget
import ipywidgets as W
import numpy as np
import traitlets

from ..audio import StreamingResampler, to_mono_float
from ..config import SAMPLE_RATE
from .microphone import Microphone
from .sources import AudioSource
from .state import LiveState

NO_AUDIO_HINT_S = 5.0  # a browser source silent this long after start: tell the user why it may be


class EndOfTurnMeter(anywidget.AnyWidget):
    """Canvas plot of every end-of-turn head over the last `window_s` seconds (eot_meter.js)."""

    _esm = Path(__file__).parent / "eot_meter.js"
    title = traitlets.Unicode("end-of-turn probability per horizon").tag(sync=True)
    horizons = traitlets.List([]).tag(sync=True)
    times = traitlets.List([]).tag(sync=True)
    probs = traitlets.List([]).tag(sync=True)
    decisions = traitlets.List([]).tag(sync=True)
    threshold = traitlets.Float(0.5).tag(sync=True)
    policy_index = traitlets.Int(0).tag(sync=True)
    now_s = traitlets.Float(0.0).tag(sync=True)
    window_s = traitlets.Float(10.0).tag(sync=True)


class LiveTranscriber(W.VBox):
    """A microphone, the model in a thread, and its views: transcript, end-of-turn meter, flush indicator.

    `horizon_s` / `threshold`: the end-of-turn policy (the streamer's: that head above the threshold), or
    `end_of_turn`: any live policy of lab.live_turns (e.g. VetoedSilenceEndOfTurn); `flush_on_eot`: call
    `streamer.flush()` on each decision and time it; `window_s`: seconds the meter shows.
    """

    def __init__(self, model, microphone: Microphone | None = None, *, horizon_s: float = 2.0,
                 threshold: float = 0.5, flush_on_eot: bool = True, window_s: float = 10.0,
                 refresh_s: float = 0.2, alignment: str | None = None, end_of_turn=None):
        self.model = model
        self.end_of_turn = end_of_turn  # a lab.live_turns policy; None: threshold on the `horizon_s` head
        if end_of_turn is not None:  # the meter draws the policy's own head and threshold
            horizon_s, threshold = end_of_turn.horizon_s, end_of_turn.threshold
        self.mic = microphone if microphone is not None else Microphone("auto")
        self.horizon_s, self.threshold = float(horizon_s), float(threshold)
        self.flush_on_eot, self.window_s, self.refresh_s = flush_on_eot, window_s, refresh_s
        self.alignment = alignment
        self.transcript = W.HTML()
        self.transcript.add_class("dsm-transcript")
        self.meter = EndOfTurnMeter(window_s=window_s)
        self.flush_line = W.HTML()
        self.flush_line.add_class("dsm-flush-indicator")
        self.error_line = W.HTML()
        self.error_line.add_class("dsm-live-error")
        self.buttons = W.HBox([W.Button(description="Start", icon="play"), W.Button(description="Stop", icon="stop")])
        self.buttons.children[0].on_click(lambda _: self.start())
        self.buttons.children[1].on_click(lambda _: self.stop())
        super().__init__([self.mic, self.buttons, W.HTML("<b>Transcript</b> (subscript: spoken time, s)"),
                          self.transcript, self.meter, self.flush_line, self.error_line])
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._new_state()
        self._render()

    def _new_state(self):
        self.streamer = self.model.stream(eot_horizon_s=self.horizon_s, eot_threshold=self.threshold,
                                          end_of_turn=self.end_of_turn,
                                          **({"alignment": self.alignment} if self.alignment else {}))
        cfg = self.model.cfg
        self.state = LiveState(cfg.eot_horizons_s, cfg.delay_frames, self.horizon_s, self.threshold)
        self._queue: queue.Queue = queue.Queue()
        self._resamplers: dict[int, StreamingResampler] = {}
        self._last_render = 0.0

    # --------------------------------------------------------------------------------------- control
    @property
    def source(self) -> AudioSource:
        return self.mic.source

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        """Start afresh: a new stream, the source, and the model thread. Returns at once."""
        if self.running:
            return self
        self._new_state()
        self._stop.clear()
        self._finished.clear()
        self._started_at = time.monotonic()
        self.mic.start(self._sink)
        self._thread = threading.Thread(target=self._run, name="dsm-live", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.mic.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._render(force=True)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until a finite source (a file) has played and been flushed; True if it finished.

        A live source never finishes, and a browser one cannot even deliver audio while a cell blocks
        (its messages reach the kernel between cells), so for those this returns at once.
        """
        if not self.source.finite:
            print(f"{self.source.kind} source: live, nothing to wait for; the tables below are a snapshot, "
                  "run them again to refresh")
            return False
        done = self._finished.wait(timeout)
        if not done:
            print(f"still running after {timeout:g} s")
        return done

    def _sink(self, chunk: np.ndarray, sample_rate: int):
        self._queue.put((chunk, sample_rate))  # never blocks: the model thread catches up

    # ------------------------------------------------------------------------------------------ loop
    def _to_model_rate(self, chunk: np.ndarray, rate: int) -> np.ndarray:
        if rate not in self._resamplers:
            self._resamplers = {rate: StreamingResampler(rate, SAMPLE_RATE)}  # a new source: a new filter
        return self._resamplers[rate].push(to_mono_float(chunk, what=f"{self.source.kind} audio chunk"))

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    chunk, rate = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self.source.finite and self.source.done.is_set():
                        self._flush(self.state.now_s, final=True)
                        break
                    self._render()
                    continue
                calls = self.state.apply(self.streamer.feed(self._to_model_rate(chunk, rate), SAMPLE_RATE))
                if calls and self.flush_on_eot:
                    self._flush(calls[-1].time_s)
                self._render()
        except Exception as e:  # shown in the widget; the traceback goes to the log for the curious
            self.state.error = f"model loop stopped: {type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            self.state.finished = True
            self.source.stop()
            self._finished.set()
            self._render(force=True)

    def _flush(self, decision_s: float, final: bool = False):
        """Drain the delay now and time it. At the end of a file, only if words are still owed."""
        if final and not self.state.words_since_flush:
            return
        frames = self.model.cfg.delay_frames + 1
        t0 = time.perf_counter()
        events = self.streamer.flush()
        wall_ms = (time.perf_counter() - t0) * 1000
        self.state.apply(events, flushing=True)
        self.state.add_flush(decision_s, wall_ms, frames, events)

    # ---------------------------------------------------------------------------------------- render
    def _render(self, force: bool = False):
        now = time.monotonic()
        if not force and now - self._last_render < self.refresh_s:
            return
        self._last_render = now
        s = self.state
        self.transcript.value = s.transcript_html()
        with self.meter.hold_sync():  # one message for the whole window, not one per trait
            for name, value in s.meter_payload(self.window_s).items():
                setattr(self.meter, name, value)
        self.flush_line.value = s.flush_html()
        problem = s.error or self.source.error
        if not problem and self.running and self.source.kind == "browser" and self.source.samples == 0 \
                and now - getattr(self, "_started_at", now) > NO_AUDIO_HINT_S:
            problem = (f"no audio from the browser after {NO_AUDIO_HINT_S:g} s: is this widget shown in a page "
                       "that may use the microphone? Otherwise choose the file source")
        self.error_line.value = f'<span class="dsm-error">{html.escape(problem)}</span>' if problem else ""
        self.mic.refresh()

    # ----------------------------------------------------------------------------------- for notebooks
    def words_frame(self):
        return self.state.words_frame()

    def steps_frame(self):
        return self.state.steps_frame()

    def flushes_frame(self):
        return self.state.flushes_frame()

    def figure(self):
        """The session's end-of-turn trace with words and flushes, as a static figure."""
        from .figures import session_figure

        return session_figure(self.state)


def live_transcriber(model, source: str = "auto", file=None, speed: float = 1.0, start: bool = True,
                     **kwargs) -> LiveTranscriber:
    """A microphone of kind `source` ("browser" | "local" | "file" | "auto") wired to `model`, started."""
    live = LiveTranscriber(model, Microphone(source, file=file, speed=speed), **kwargs)
    return live.start() if start else live
