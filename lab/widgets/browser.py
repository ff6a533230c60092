"""The page's microphone as a source: captured in the browser, streamed to the kernel, however remote.

The browser side (browser_mic.js) asks for the microphone with echo cancellation, noise suppression and
automatic gain off (they reshape speech in ways the model never heard in training), captures it with an
AudioWorklet loaded from a Blob URL (no file to serve, no CDN), and sends blocks of int16 PCM to the kernel
as binary buffers: `model.send({"type": "pcm", "dtype": "int16", "sample_rate": 48000, "seq": n}, [buf])`.
Here `_on_msg` decodes them and hands them to the sink, like any other source.

The capture starts when the kernel sets `capturing = True` (or the page's Start button is pressed). It
needs the widget to be shown in a page: in a headless run nothing arrives, and the status says so.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from .sources import AudioSource

HERE = Path(__file__).parent

# getUserMedia constraints: the raw microphone, as the model's training audio was (no DSP on top).
CONSTRAINTS = {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False, "channelCount": 1}

DTYPES = {"int16": (np.int16, 32768.0), "float32": (np.float32, 1.0)}


def decode_pcm(content: dict, buffers: list) -> tuple[np.ndarray, int]:
    """One PCM message -> (float32 mono samples, sample rate). Raises ValueError naming what is wrong."""
    dtype = content.get("dtype", "int16")
    if dtype not in DTYPES:
        raise ValueError(f"PCM message: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    rate = content.get("sample_rate")
    if not isinstance(rate, (int, float)) or rate <= 0:
        raise ValueError(f"PCM message: sample_rate must be a positive number of Hz, got {rate!r}")
    if len(buffers) != 1:
        raise ValueError(f"PCM message: expected one binary buffer, got {len(buffers)}")
    np_type, scale = DTYPES[dtype]
    raw = memoryview(buffers[0]).cast("B")
    if len(raw) % np.dtype(np_type).itemsize:
        raise ValueError(f"PCM message: {len(raw)} bytes is not a whole number of {dtype} samples")
    samples = np.frombuffer(raw, dtype=np_type).astype(np.float32)
    if scale != 1.0:
        samples /= scale
    return samples, int(rate)


class BrowserMicrophoneWidget(anywidget.AnyWidget):
    """The page side of the browser microphone: a Start/Stop button, the device and rate, errors."""

    _esm = HERE / "browser_mic.js"
    _css = HERE / "widgets.css"
    key = traitlets.Unicode().tag(sync=True)  # names this widget's capture in the page
    capturing = traitlets.Bool(False).tag(sync=True)  # set by the kernel (or the page's button)
    constraints = traitlets.Dict(CONSTRAINTS).tag(sync=True)
    block_ms = traitlets.Float(40.0).tag(sync=True)  # PCM message length: a few per 80 ms model step
    # Filled in by the page:
    device_label = traitlets.Unicode("").tag(sync=True)
    sample_rate = traitlets.Int(0).tag(sync=True)
    page_status = traitlets.Unicode("").tag(sync=True)  # "" until a page shows the widget
    page_error = traitlets.Unicode("").tag(sync=True)


class BrowserMicrophone(AudioSource):
    """The browser's microphone, through `BrowserMicrophoneWidget` (which must be displayed).

    Blocks are numbered by the page. They can reach the kernel out of order (JupyterLab queues a
    connection's messages while it (re)connects, and sends newer ones straight away), so they are put back
    in order here: a block waits until those before it have come, for at most `reorder_blocks` blocks;
    a gap still open then is counted as lost (an overflow), as is a block that comes after it was given up.
    """

    kind = "browser"

    def __init__(self, block_ms: float = 40.0, reorder_blocks: int = 50):
        super().__init__()
        self.widget = BrowserMicrophoneWidget(block_ms=block_ms, key=uuid.uuid4().hex)
        self.widget.on_msg(self._on_msg)
        self.widget.observe(self._on_page_error, names="page_error")
        self.reorder_blocks = reorder_blocks
        self.bad_messages = 0
        self.reordered = 0  # blocks that arrived before one they follow
        self._reset_order(None)

    def _reset_order(self, capture):
        self.capture, self.next_seq, self.waiting = capture, 0, {}

    def _on_msg(self, widget, content, buffers):
        """PCM from the page (runs on the kernel's main thread, between cells: so must a live cell not block)."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "error":
            self.error = str(content.get("message", "unknown error in the page"))
            return
        if kind != "pcm" or not self.running:
            return
        try:
            samples, rate = decode_pcm(content, buffers)
        except ValueError as e:
            self.bad_messages += 1
            self.error = str(e)
            return
        self.device = self.widget.device_label or "browser microphone"
        seq = content.get("seq")
        if not isinstance(seq, int):  # unnumbered: as it comes
            self._take(samples, rate)
            return
        if content.get("capture") != self.capture:  # a new capture (Start again, or the page reloaded)
            self._reset_order(content.get("capture"))
        if seq < self.next_seq:
            self.overflows += 1  # came after we stopped waiting for it
            return
        if seq > self.next_seq:
            self.reordered += 1
        self.waiting[seq] = (samples, rate)
        self._release()

    def _release(self):
        """Hand on the blocks that are next in order; give up on a gap that has waited too long."""
        while self.waiting:
            if self.next_seq not in self.waiting:
                if len(self.waiting) <= self.reorder_blocks:
                    return
                first = min(self.waiting)
                self.overflows += first - self.next_seq  # lost between the page and here
                self.next_seq = first
            self._take(*self.waiting.pop(self.next_seq))
            self.next_seq += 1

    def _take(self, samples, rate):
        self.sample_rate, self.block_size = rate, len(samples)
        self._deliver(samples, rate)

    def _on_page_error(self, change):
        if change["new"]:
            self.error = change["new"]

    def _open(self):
        self._reset_order(None)
        self.widget.capturing = True

    def _close(self):
        self.widget.capturing = False

    def describe(self) -> str:
        if not self.widget.page_status:
            return ("browser: waiting for a page to show this widget (a headless run has none: "
                    "use the file source there)")
        return super().describe() + (f" · {self.reordered} blocks put back in order" if self.reordered else "")
