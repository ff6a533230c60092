"""The Microphone widget: one interface over three sources (browser, local PortAudio device, file).

    mic = Microphone("auto", file="clip.wav")
    mic.start(sink)    # sink(chunk, sample_rate), from the source's thread; mic.stop()

It shows the source, its device, sample rate, block size and overflows in one line, refreshed while it
runs, and says in one line why a source cannot work (no device, no page) with a button for the file source.
The source can be changed while running: the new one is started with the same sink.
"""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as W

from .browser import BrowserMicrophone
from .sources import SOURCES, AudioSource, FileMicrophone, LocalMicrophone, NoInputDevice, default_file, resolve_source


class Microphone(W.VBox):
    def __init__(self, source: str = "auto", file: str | Path | None = None, speed: float = 1.0,
                 device: int | str | None = None, loop: bool = False):
        self.file = Path(file) if file is not None else None
        self.speed, self.device_wanted, self.loop = speed, device, loop
        kind, self.note = resolve_source(source, device)
        self.picker = W.ToggleButtons(options=[s for s in SOURCES if s != "auto"], value=kind,
                                      description="source", style={"button_width": "80px"})
        self.status = W.HTML()
        self.status.add_class("dsm-mic-status")
        self.use_file = W.Button(description="play a file instead", layout=W.Layout(display="none"))
        self.use_file.on_click(lambda _: self.use("file"))
        self.page = W.Box()  # holds the browser widget while the browser source is in use
        super().__init__([self.picker, self.page, W.HBox([self.status, self.use_file])])
        self.source: AudioSource = self._make(kind)
        self._sink = None
        self.picker.observe(lambda change: self.use(change["new"]), names="value")
        self.refresh()

    @property
    def kind(self) -> str:
        return self.source.kind

    def _make(self, kind: str) -> AudioSource:
        if kind == "local":
            src: AudioSource = LocalMicrophone(self.device_wanted)
        elif kind == "browser":
            src = BrowserMicrophone()
        else:
            src = FileMicrophone(self.file or default_file(), speed=self.speed, loop=self.loop)
        self.page.children = (src.widget,) if isinstance(src, BrowserMicrophone) else ()
        return src

    def start(self, sink):
        """Start the source, handing chunks to `sink`. A source that cannot open says why and stays off."""
        self._sink = sink
        try:
            self.source.start(sink)
        except NoInputDevice as e:
            self.note = f"{e}; choose 'browser' to use this page's microphone, or play a file"
        self.refresh()

    def stop(self):
        self.source.stop()
        self._sink = None
        self.refresh()

    def use(self, kind: str):
        """Switch to another source; if one was running, the new one takes over its sink."""
        if kind == self.source.kind:
            return
        sink = self._sink
        self.source.stop()
        self.note = ""
        self.source = self._make(kind)
        if self.picker.value != kind:
            self.picker.value = kind  # calls use() again, which returns at once
        if sink is not None:
            self.start(sink)
        self.refresh()

    def status_line(self) -> str:
        """One line: what the source is doing, or why it cannot."""
        src = self.source
        line = html.escape(src.describe())
        problem = src.error or self.note
        if problem:
            line += f'<br><span class="dsm-error">{html.escape(problem)}</span>'
        return line

    def refresh(self):
        self.status.value = f'<span class="dsm-mic-line">{self.status_line()}</span>'
        failed = bool(self.source.error or self.note) and self.source.kind != "file"
        self.use_file.layout.display = "" if failed else "none"

    def __repr__(self):
        return f"Microphone({self.source.describe()})"
