"""The annotator's kernel side: the page's messages set labels, undo them, play a region as WAV bytes and
save the labels into the item's JSON, every other field kept; a long recording is read a window at a time.
(tests/test_browser.py clicks the same widget in a real Chromium.)"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from lab.items import check_item, read_meta, write_item
from lab.widgets import Annotator

RATE = 16_000


@pytest.fixture
def item(tmp_path):
    ramp = np.linspace(0.01, 0.3, 3 * RATE)  # louder every second: each window looks different
    audio = (ramp * np.sin(np.arange(3 * RATE) / RATE * 2 * np.pi * 220))[:, None].repeat(2, 1)
    meta = {"audio": "call.wav", "speakers": ["a", "b"], "note": "kept",
            "words": [{"text": "yes", "start": 0.2, "end": 0.5, "speaker": "a"},
                      {"text": "no", "start": 1.5, "end": 1.8, "speaker": "b"}],
            "turns": [{"start": 0.2, "end": 0.5, "speaker": "a"}, {"start": 1.5, "end": 1.8, "speaker": "b"}],
            "pauses": [{"start": 0.5, "end": 1.5, "label": "hold", "confidence": 0.6, "confirmed": False},
                       {"start": 1.8, "end": 3.0, "label": "shift", "confidence": 0.9, "confirmed": False}]}
    return write_item(tmp_path / "call.json", meta, audio, RATE)


def page(widget, **content):
    widget._on_msg(widget, content, [])


def test_labels_from_the_page_undo_and_save(item):
    a = Annotator(item, view_s=2.0)
    assert len(a.wave) > 100 and [w["text"] for w in a.words] == ["yes", "no"]
    page(a, type="label", index=0, label="shift")
    page(a, type="confirm", index=1)
    assert [(p["label"], p["confirmed"]) for p in a.pauses] == [("shift", True), ("shift", True)]
    page(a, type="undo")
    assert a.pauses[1]["confirmed"] is False and a.selected == 1
    page(a, type="label", index=0, label="maybe")
    assert a.status.startswith("error: label must be one of") and a.pauses[0]["label"] == "shift"
    page(a, type="save")
    assert a.saved == 1 and check_item(item) == []
    saved = json.loads(item.read_text())
    assert [(p["label"], p["confirmed"]) for p in saved["pauses"]] == [("shift", True), ("shift", False)]
    assert saved["note"] == "kept" and saved["pauses"][0]["confidence"] == 0.6
    assert read_meta(item)["pauses"][0]["kind"] == "end_of_turn"


def test_play_sends_the_region_as_wav_and_paging_reads_a_window(item, monkeypatch):
    a = Annotator(item, view_s=1.0)
    sent = []
    monkeypatch.setattr(a, "send", lambda content, buffers=None: sent.append((content, buffers)))
    page(a, type="play", start=0.5, end=1.5)
    (content, (wav,)), = sent
    audio, rate = sf.read(io.BytesIO(wav))
    assert content == {"type": "audio", "start": 0.5, "end": 1.5} and rate == RATE and audio.shape == (RATE, 2)
    first = list(a.wave)
    a.view_start_s = 2.0  # the last second: a window of its own
    assert a.wave != first and len(a.wave) > 100
    page(a, type="play", start=2.9, end=2.9)
    assert a.status.startswith("error: nothing to play")
