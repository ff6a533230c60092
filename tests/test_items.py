"""The item format of your own recordings: `dsm-lab check` names the file and field of every kind of bad
input and never crashes; good items (ours, and the synthetic corpus's) are read by the turn lab and the
latency lab alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

import lab
from lab import evaluate, latency
from lab.cli import main
from lab.items import FORMAT, check_folder, read_item, read_meta, schema_path, write_item

RATE = 16_000


@pytest.fixture(scope="module")
def embedded_model():
    return lab.load()


def good_meta() -> dict:
    return {"audio": "a.wav", "words": [{"text": "set", "start": 0.1, "end": 0.3}, {"text": "a"},
                                        {"text": "timer", "start": 0.5, "end": 0.8}],
            "turns": [{"start": 0.1, "end": 0.8}],
            "pauses": [{"start": 0.3, "end": 0.5, "label": "hold"}, {"start": 0.8, "end": 1.0, "label": "shift"}]}


def make_item(folder, meta: dict, name: str = "a", seconds: float = 1.0, channels: int = 1):
    folder.mkdir(parents=True, exist_ok=True)
    audio = 0.01 * np.random.default_rng(0).standard_normal((int(seconds * RATE), channels))
    sf.write(folder / f"{name}.wav", audio.astype(np.float32), RATE)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(meta) if isinstance(meta, dict) else meta)
    return path


def test_a_good_item_passes_and_reads_with_both_label_names(tmp_path):
    path = make_item(tmp_path, good_meta(), channels=2)
    assert check_folder(tmp_path) == []
    audio, meta = read_item(path)
    assert audio.shape == (RATE,) and meta["channels"] == 2 and meta["sample_rate"] == RATE
    assert [(p["label"], p["kind"]) for p in meta["pauses"]] == [("hold", "mid_turn"), ("shift", "end_of_turn")]
    assert read_meta(path)["duration"] == 1.0
    assert json.loads(schema_path().read_text())["required"] == ["audio", "words", "turns", "pauses"]


def test_write_item_round_trips_and_replaces_the_synth_kind_by_the_label(tmp_path):
    meta = good_meta()
    meta["pauses"] = [{"start": 0.3, "end": 0.5, "kind": "mid_turn"}]
    audio = np.zeros(RATE, np.float32)
    path = write_item(tmp_path / "b.json", {**meta, "audio": "b.wav"}, audio, RATE)
    written = json.loads(path.read_text())
    assert written["format"] == FORMAT and written["pauses"] == [{"start": 0.3, "end": 0.5, "label": "hold"}]
    assert written["sample_rate"] == RATE and check_folder(tmp_path) == []


# Each kind of bad input: (what to do to a good item, the field named, words of the message).
BAD = {
    "not json": ("{words: [", "", "not valid JSON"),
    "not an object": ("[1, 2]", "", "must be an object"),
    "missing field": (lambda m: m.pop("pauses"), "pauses", "missing"),
    "wrong type": (lambda m: m.update(turns="0.1-0.8"), "turns", "must be a list"),
    "audio missing": (lambda m: m.update(audio="nope.wav"), "audio", "no such file"),
    "past the end": (lambda m: m["pauses"][1].update(end=1.4), "pauses[1].end", "past the end of the audio"),
    "unordered": (lambda m: m["words"].reverse(), "words[2].start", "time order"),
    "overlap": (lambda m: m["pauses"][0].update(end=0.9), "pauses[1].start", "overlaps pauses[0]"),
    "end before start": (lambda m: m["turns"][0].update(end=0.05), "turns[0].end", "not after its start"),
    "bad label": (lambda m: m["pauses"][0].update(label="maybe"), "pauses[0].label", "hold"),
    "no label": (lambda m: m["pauses"][0].pop("label"), "pauses[0].label", "missing"),
    "not a time": (lambda m: m["words"][0].update(start="0.1s"), "words[0].start", "number of seconds"),
    "half a time": (lambda m: m["words"][2].pop("end"), "words[2].end", "both times or neither"),
    "sample rate": (lambda m: m.update(sample_rate=24000), "sample_rate", "has 16000"),
    "confidence": (lambda m: m["pauses"][0].update(confidence=1.5), "pauses[0].confidence", "0 to 1"),
    "short pause": (lambda m: m["pauses"][0].update(end=0.35), "pauses[0]", "at least 100 ms"),
    "word text": (lambda m: m["words"][1].update(text=3), "words[1].text", "string"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_check_names_file_and_field_of_each_kind_of_bad_input(kind, tmp_path, capsys):
    change, field, words = BAD[kind]
    meta = good_meta()
    if callable(change):
        change(meta)
    path = make_item(tmp_path, meta if callable(change) else change)
    make_item(tmp_path, good_meta(), name="ok")
    problems = check_folder(tmp_path)
    assert [(p.file, p.field) for p in problems] == [(str(path), field)], problems
    assert words in problems[0].message
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: {field + ': ' if field else ''}" in out and "2 items, 1 good" in out
    with pytest.raises(ValueError, match="problem"):
        read_item(path)


def test_unreadable_audio_and_an_empty_folder_are_problems_not_crashes(tmp_path, capsys):
    path = make_item(tmp_path / "d", good_meta())
    (tmp_path / "d" / "a.wav").write_bytes(b"RIFF\x00\x00not a wave at all")
    problems = check_folder(tmp_path / "d")
    assert [(p.field, "unreadable audio" in p.message) for p in problems] == [("audio", True)], problems
    assert problems[0].file == str(path)
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 1 and "no items" in capsys.readouterr().out
    assert main(["check", str(path)]) == 1 and "1 items, 0 good" in capsys.readouterr().out  # one file
    assert main(["check", str(tmp_path / "d"), "--json"]) == 1
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["file"] == str(path) and row["field"] == "audio"


def test_turn_lab_and_latency_lab_read_your_own_items(tmp_path, embedded_model):
    """A two-channel recording in the format, without word times for one word, through both labs."""
    from lab.widgets import tables

    clip = tables.sample("timer")
    words = [dict(w) for w in clip.words]
    words[1] = {"text": words[1]["text"]}  # a word without times
    stereo = np.stack([clip.audio, np.zeros_like(clip.audio)], 1)
    meta = {"audio": "timer.wav", "speakers": ["user", "agent"], "words": words,
            "turns": [{"start": clip.words[0]["start"], "end": clip.words[-1]["end"], "speaker": "user"}],
            "pauses": [{"start": p["start"], "end": p["end"], "label": "hold" if p["kind"] == "mid_turn" else "shift"}
                       for p in clip.meta["pauses"]]}
    write_item(tmp_path / "timer.json", meta, stereo, clip.sample_rate)
    results = evaluate.run_items(embedded_model, tmp_path, tail_s=1.0)
    assert results[0].turn_end_s == clip.words[-1]["end"] and len(results[0].ref_words) == len(words) - 1
    assert evaluate.transcription_summary(results)["wer"] < 0.5
    lab_results = latency.run_items(embedded_model, [tmp_path / "timer.json"], model_decision=False)
    assert len(lab_results["words"]) >= 3 and set(lab_results["turns"].variant) == {"none", "flush", "unmute"}


ODD_VALUES = [None, True, -1, 1e300, float("nan"), "x", "", [], [1, "a"], {}, {"start": 1}]


def test_check_never_crashes_on_any_field_of_any_type(tmp_path):
    """Every field of a good item (and of its first word, turn and pause) replaced by each odd value: a list
    of problems each time (never an exception), naming the field that was changed."""
    make_item(tmp_path, good_meta())
    path = tmp_path / "a.json"
    base = good_meta()
    places = [(None, k) for k in base] + [(group, k) for group in ("words", "turns", "pauses")
                                          for k in base[group][0]] + [(None, "speakers"), (None, "channels"),
                                                                      ("words", "speaker"), ("pauses", "kind")]
    for group, key in places:
        for value in ODD_VALUES:
            meta = good_meta()
            target = meta if group is None else meta[group][0]
            target[key] = value
            if key == "kind":
                target.pop("label")  # the synthetic corpus's name is read only without a label
            path.write_text(json.dumps(meta))
            problems = check_folder(tmp_path)  # must not raise
            assert not [p for p in problems if "could not be checked" in p.message], problems  # foreseen
            always_wrong = key in ("start", "end", "audio", "label", "kind")
            if always_wrong or (group is None and key != "speakers" and value != []):
                # a time, the audio, a label: every odd value is wrong, and the problem names where it is
                where = key if group is None else f"{group}[0]"
                assert any(p.field.startswith(where) for p in problems), (where, value, problems)


def test_the_schema_file_says_what_the_checker_says_where_a_schema_can():
    """lab/items/schema.json (shipped for other tools) against the checker: a good item, ours and the
    synthetic corpus's, passes both; a bad label, a missing field, a half-timed word fail both."""
    import jsonschema  # with JupyterLab, in [lab] and [dev]

    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    synth = good_meta()
    synth["pauses"] = [{"start": 0.3, "end": 0.5, "kind": "mid_turn"}]
    assert not list(validator.iter_errors(good_meta())) and not list(validator.iter_errors(synth))
    for kind in ("missing field", "bad label", "half a time", "not a time", "no label"):
        meta = good_meta()
        BAD[kind][0](meta)
        assert list(validator.iter_errors(meta)), kind
