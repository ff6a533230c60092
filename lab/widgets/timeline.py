"""Delay timeline as a widget: the figure of `figures.delay_timeline`, with a waveform / spectrogram switch
and a time window to zoom into.

    widgets.DelayTimeline(clip, transcript, delay_s=model.info.delay_s)
"""

from __future__ import annotations

import ipywidgets as W

from .figures import delay_timeline


class DelayTimeline(W.VBox):
    def __init__(self, clip, transcript, delay_s: float):
        """`clip`: a widgets.Sample (audio, rate, reference words); `transcript`: model.transcribe(...)."""
        self.clip, self.words, self.delay_s = clip, transcript.words, delay_s
        end = max([len(clip.audio) / clip.sample_rate] + [w.emitted_s + 0.2 for w in self.words])
        self.view = W.ToggleButtons(options=["waveform", "spectrogram"], value="waveform")
        self.window = W.FloatRangeSlider(value=(0.0, end), min=0.0, max=end, step=0.08, description="window (s)",
                                         continuous_update=False, layout=W.Layout(width="600px"))
        self.out = W.Output()
        for control in (self.view, self.window):
            control.observe(self._redraw, names="value")
        super().__init__([W.HBox([self.view, self.window]), self.out])
        self._redraw()

    def figure(self):
        return delay_timeline(self.clip.audio, self.clip.sample_rate, self.clip.words, self.words, self.delay_s,
                              spectrogram=self.view.value == "spectrogram", window_s=tuple(self.window.value))

    def _redraw(self, change=None):
        from IPython.display import display

        self.out.clear_output(wait=True)
        with self.out:
            display(self.figure())
