"""Imports from other label formats and exports back: TextGrid and WebVTT round trips keep every word time
and pause label; SRT, CTM, Audacity and eot-bench's layout become items that pass `dsm-lab check`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from lab.cli import main
from lab.extras import MissingExtra
from lab.items import check_folder, read_meta
from lab.items.imports import export_item, import_file, import_folder

RATE = 16_000
WORDS = [("set", 0.2, 0.45, "ann"), ("a", 0.45, 0.52, "ann"), ("timer", 0.52, 0.9, "ann"),
         ("sure", 1.6, 1.9, "bob")]
PAUSES = [(0.9, 1.6, "shift"), (1.9, 2.5, "shift")]


def sound(path, seconds=2.5, channels=1):
    sf.write(path, np.zeros((int(seconds * RATE), channels), np.float32), RATE)
    return path


def test_textgrid_round_trip_keeps_word_times_turns_and_labels(tmp_path):
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    tg = textgrid.Textgrid()
    tg.addTier(textgrid.IntervalTier("words", [Interval(s, e, w) for w, s, e, _ in WORDS], 0, 2.5))
    tg.addTier(textgrid.IntervalTier("turns", [Interval(0.2, 0.9, "ann"), Interval(1.6, 1.9, "bob")], 0, 2.5))
    tg.addTier(textgrid.IntervalTier("pauses", [Interval(s, e, lab) for s, e, lab in PAUSES], 0, 2.5))
    src = tmp_path / "call.TextGrid"
    tg.save(str(src), format="short_textgrid", includeBlankSpaces=True)
    sound(tmp_path / "call.wav")
    item = import_file("textgrid", src, tmp_path / "items")
    meta = read_meta(item)
    assert [(p["start"], p["end"], p["label"]) for p in meta["pauses"]] == PAUSES
    assert [t.get("speaker") for t in meta["turns"]] == ["ann", "bob"]
    back = export_item("textgrid", item, tmp_path / "back.TextGrid")
    again = textgrid.openTextgrid(str(back), includeEmptyIntervals=False)
    for name in ("words", "turns", "pauses"):
        assert again.getTier(name).entries == tg.getTier(name).entries, name


VTT = """WEBVTT

00:00:00.200 --> 00:00:00.450
<v ann>set

00:00:00.450 --> 00:00:00.520
<v ann>a

00:00:00.520 --> 00:00:00.900
<v ann>timer

00:00:00.900 --> 00:00:01.600
[hold]

00:00:01.600 --> 00:00:01.900
<v ann>please

00:00:01.900 --> 00:00:02.500
[shift]
"""


def cues(path):
    import webvtt

    return [(c.start, c.end, c.voice, c.text) for c in webvtt.read(str(path)).captions]


def test_vtt_round_trip_keeps_word_times_speakers_and_labels(tmp_path):
    src = tmp_path / "call.vtt"
    src.write_text(VTT)
    sound(tmp_path / "call.wav")
    item = import_file("vtt", src, tmp_path / "items")
    meta = read_meta(item)
    assert [w["text"] for w in meta["words"]] == ["set", "a", "timer", "please"]
    assert [(p["start"], p["label"]) for p in meta["pauses"]] == [(0.9, "hold"), (1.9, "shift")]
    assert [(t["start"], t["end"], t["speaker"]) for t in meta["turns"]] == [(0.2, 1.9, "ann")]
    back = export_item("vtt", item, tmp_path / "back.vtt")
    assert cues(back) == cues(src) and len(cues(src)) == 6


def test_srt_with_speaker_prefixes_and_a_line_of_words(tmp_path):
    src = tmp_path / "talk.srt"
    src.write_text("1\n00:00:00,200 --> 00:00:00,900\nann: set a timer\n\n"
                   "2\n00:00:01,600 --> 00:00:01,900\nbob: sure\n\n3\n00:00:01,900 --> 00:00:02,500\n[shift]\n")
    sound(tmp_path / "talk.flac")
    meta = read_meta(import_file("srt", src, tmp_path / "items"))
    assert [(w["text"], "start" in w, w["speaker"]) for w in meta["words"]] == [
        ("set", False, "ann"), ("a", False, "ann"), ("timer", False, "ann"), ("sure", True, "bob")]
    assert [(t["start"], t["end"], t["speaker"]) for t in meta["turns"]] == [(0.2, 0.9, "ann"), (1.6, 1.9, "bob")]
    back = export_item("srt", tmp_path / "items" / "talk.json", tmp_path / "back.srt")
    assert "bob: sure" in back.read_text() and "[shift]" in back.read_text()


def test_ctm_two_channels_become_speakers_and_the_change_a_shift(tmp_path):
    src = tmp_path / "call.ctm"
    src.write_text("".join(f"call {1 if who == 'ann' else 2} {s:.3f} {e - s:.3f} {w}\n" for w, s, e, who in WORDS))
    sound(tmp_path / "call.wav", channels=2)
    item = import_file("ctm", src, tmp_path / "items")
    meta = read_meta(item)
    assert meta["speakers"] == ["1", "2"] and [w["speaker"] for w in meta["words"]] == ["1", "1", "1", "2"]
    assert [(p["start"], p["end"], p["label"]) for p in meta["pauses"]] == PAUSES  # the speaker changes at 0.9 s
    assert [(t["start"], t["end"]) for t in meta["turns"]] == [(0.2, 0.9), (1.6, 1.9)]
    back = export_item("ctm", item, tmp_path / "back.ctm")
    assert back.read_text() == src.read_text()


def test_audacity_labels_round_trip(tmp_path):
    src = tmp_path / "mic.txt"
    rows = [(s, e, w) for w, s, e, _ in WORDS] + [(s, e, lab) for s, e, lab in PAUSES]
    src.write_text("".join(f"{s:.6f}\t{e:.6f}\t{t}\n" for s, e, t in sorted(rows)) + "\\\t0\t8000\n")
    sound(tmp_path / "mic.wav")
    item = import_file("audacity", src, tmp_path / "items")
    assert [p["label"] for p in read_meta(item)["pauses"]] == ["shift", "shift"]
    back = export_item("audacity", item, tmp_path / "back.txt")
    assert back.read_text() == "".join(f"{s:.6f}\t{e:.6f}\t{t}\n" for s, e, t in sorted(rows))


def test_eotbench_rows_become_items(tmp_path):
    import pyarrow as pa  # the [eotbench] extra, in [dev]
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    sf.write(buf, np.zeros(2 * RATE, np.float32), RATE, format="WAV")
    table = pa.table({"id": ["t1"], "language": ["en"],
                      "audio": [{"bytes": buf.getvalue(), "array": None, "sampling_rate": RATE}],
                      "silence_spans": [[{"start": 0.5, "end": 0.9}, {"start": 1.2, "end": 2.0}]]})
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "test.parquet")
    assert main(["import", "eot-bench", str(tmp_path / "data"), "--out", str(tmp_path / "items")]) == 0
    meta = read_meta(tmp_path / "items" / "t1.json")
    assert [(p["start"], p["label"]) for p in meta["pauses"]] == [(0.5, "hold"), (1.2, "shift")]
    assert meta["turns"] == [{"start": 0.0, "end": 1.2}] and check_folder(tmp_path / "items") == []


def test_cli_imports_a_folder_and_says_what_is_missing(tmp_path, capsys):
    (tmp_path / "a.vtt").write_text(VTT)
    sound(tmp_path / "a.wav")
    (tmp_path / "b.vtt").write_text(VTT)  # no b.wav
    assert main(["import", "vtt", str(tmp_path / "a.vtt"), "--out", str(tmp_path / "out")]) == 0
    assert check_folder(tmp_path / "out") == [] and json.loads((tmp_path / "out" / "a.json").read_text())["source"]
    assert main(["import", "vtt", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "b.vtt: no sound file beside it" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no srt files"):
        import_folder("srt", tmp_path, tmp_path / "out")


def test_without_the_formats_extra_the_error_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "webvtt", None)
    (tmp_path / "a.vtt").write_text(VTT)
    sound(tmp_path / "a.wav")
    with pytest.raises(MissingExtra, match=r'pip install "dsm-lab\[formats\]"'):
        import_file("vtt", tmp_path / "a.vtt", tmp_path / "out")
