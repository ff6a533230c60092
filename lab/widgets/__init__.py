"""Widgets and teaching views for the notebooks: a live microphone, a live transcript with the end-of-turn
meter and the flush indicator, an attention viewer, an annotator for the pauses of your own recordings, the
delay timeline, and the tables and figures the notebooks show. Everything here is drawn by the package
itself (anywidget + canvas): no CDN, works offline.

    from lab import widgets
    live = widgets.live_transcriber(model, "auto")        # "browser" | "local" | "file" | "auto"
    widgets.AttentionViewer.from_run(model, widgets.sample("weather").wav)
    widgets.delay_timeline(audio, rate, reference_words, transcript.words, model.info.delay_s)

Sources (one interface): `LocalMicrophone` (PortAudio), `BrowserMicrophone` (the page's microphone,
streamed to the kernel), `FileMicrophone` (a file in real time: the microphone when there is none).
"""

from ..extras import missing_extra

try:  # the widgets need the [lab] extra (anywidget, ipywidgets, matplotlib); say so instead of a bare import error
    from .annotate import Annotator
    from .attention import AttentionViewer
    from .browser import BrowserMicrophone, BrowserMicrophoneWidget, decode_pcm
    from .figures import attention_over_audio, delay_timeline, session_figure, sweep_figure, two_streams
    from .frontend_figures import frame_figure
    from .live import EndOfTurnMeter, LiveTranscriber, live_transcriber
    from .microphone import Microphone
    from .sources import AudioSource, FileMicrophone, LocalMicrophone, NoInputDevice, input_devices, resolve_source
    from .state import FlushRecord, LiveState
    from .tables import (
        Sample,
        alignment_table,
        all_samples,
        delay_sweep,
        evaluate,
        item_jsons,
        sample,
        step_table,
        sweep_models,
        word_table,
    )
    from .timeline import DelayTimeline
except ModuleNotFoundError as e:
    raise missing_extra(e, "lab.widgets") from e

__all__ = [
    "Annotator", "AttentionViewer", "AudioSource", "BrowserMicrophone", "BrowserMicrophoneWidget", "DelayTimeline",
    "EndOfTurnMeter",
    "FileMicrophone", "FlushRecord", "LiveState", "LiveTranscriber", "LocalMicrophone", "Microphone",
    "NoInputDevice", "Sample", "alignment_table", "all_samples", "attention_over_audio", "decode_pcm",
    "delay_sweep", "delay_timeline", "evaluate", "frame_figure", "input_devices", "item_jsons", "live_transcriber",
    "resolve_source", "sample",
    "session_figure", "step_table", "sweep_figure", "sweep_models", "two_streams", "word_table",
]
