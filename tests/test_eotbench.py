"""The eot-bench protocol: the sweep by hand on spans whose answers are known, and a small folder in
eot-bench's parquet layout, written here, run end to end through `dsm-lab turns --protocol eot-bench`."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lab import synth
from lab.cli import main
from lab.eotbench import label_spans, load_eotbench, operating_points, sweep, vad_sweep

SPANS = pd.DataFrame({"label": ["hold", "hold", "hold", "eot"], "duration_s": [0.5, 1.5, 3.0, 2.0]})
SCORED = [np.array([[0.1, 0.2], [0.3, 0.9]]), np.zeros((0, 2)), np.array([[0.5, 0.7]]),
          np.array([[0.1, 0.3], [0.4, 0.8]])]


def row(table, th, ad, to):
    return table.set_index(["threshold", "action_delay", "timeout"]).loc[(th, ad, to)]


def test_sweep_by_hand():
    table = sweep(SPANS, SCORED, thresholds=[0.5, 0.9], action_delays=[0.2, 0.6], timeouts=[1.0, 3.5])
    assert len(table) == 2 * 2 * 2
    r = row(table, 0.5, 0.2, 1.0)  # hold 0 fires at 0.3 s inside 0.5 s; holds 1, 2 outlast the timeout
    assert (r.cutoff_rate, r.mean_latency, r.timeout_rate) == (1.0, 0.4, 0.0)
    r = row(table, 0.5, 0.6, 3.5)  # the action delay outlasts hold 0; hold 1 never fires; hold 2 fires at 0.5
    assert r.cutoff_rate == pytest.approx(1 / 3) and r.mean_latency == 0.6
    r = row(table, 0.9, 0.2, 1.0)  # 0.9 is not above 0.9: nothing fires; the timeout decides alone
    assert r.cutoff_rate == pytest.approx(2 / 3) and (r.mean_latency, r.timeout_rate) == (1.0, 1.0)
    points = operating_points(table)
    assert points["false_cutoff_rate_600ms"] == pytest.approx(1 / 3, abs=1e-4)
    assert points["false_cutoff_rate_600ms_params"] == {"threshold": 0.5, "action_delay": 0.6, "timeout": 3.5}
    assert points["false_cutoff_rate_300ms"] is None  # no setting answers within 0.3 s on average
    assert points["latency_at_5pct_s"] == 3.5  # no cut-off at all only by waiting out every hold: th 0.9, 3.5 s
    assert points["latency_at_5pct_s_params"] == {"threshold": 0.9, "action_delay": 0.2, "timeout": 3.5}
    vad = vad_sweep(SPANS, [0.2, 1.0, 2.0])
    assert vad["cutoff_rate"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])


def test_spans_are_labelled_as_eot_bench_labels_them():
    spans = label_spans([{"start": 0.5, "end": 0.55}, {"start": 1.0, "end": 1.4}, {"start": 2.0, "end": 3.0}])
    assert spans == [{"start": 1.0, "end": 1.4, "label": "hold"}, {"start": 2.0, "end": 3.0, "label": "eot"}]


def write_folder(root):
    """Three turns as eot-bench ships them: parquet rows, audio as encoded bytes or as an array."""
    rows = []
    for i, text in enumerate(["set a timer for | five minutes", "what is the weather in | paris. thanks",
                              "play some music"]):
        audio, meta = synth.synthesize_text(text, pause_s=0.6 + 0.3 * i, end_s=1.0)
        w = meta["words"]
        spans = [{"start": a["end"], "end": b["start"]} for a, b in zip(w, w[1:]) if b["start"] - a["end"] >= 0.1]
        spans.append({"start": w[-1]["end"], "end": len(audio) / 24_000})
        if i == 2:
            encoded = {"array": audio.tolist(), "sampling_rate": 24_000}
        else:
            buffer = io.BytesIO()
            sf.write(buffer, audio, 24_000, format="WAV")
            encoded = {"bytes": buffer.getvalue(), "path": f"turn{i}.wav"}
        rows.append({"id": f"turn{i}", "language": "en", "audio": encoded, "silence_spans": spans})
    (root / "all").mkdir(parents=True)
    for k, part in enumerate((rows[:2], rows[2:])):
        pd.DataFrame(part).to_parquet(root / "all" / f"validation-0000{k}-of-00002.parquet")
    return rows


def test_a_folder_in_eot_bench_layout_runs_end_to_end(tmp_path, tiny_model_dir, capsys):
    rows = write_folder(tmp_path / "data")
    turns = load_eotbench(tmp_path / "data")
    assert [t.id for t in turns] == ["turn0", "turn1", "turn2"]
    assert [s["label"] for s in turns[2].spans] == ["eot"] and turns[0].spans[-1]["label"] == "eot"
    assert main(["turns", str(tmp_path / "data"), "--protocol", "eot-bench", "--json",
                 "--model", str(tiny_model_dir)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    keys = {"false_cutoff_rate_300ms", "false_cutoff_rate_600ms", "latency_at_5pct_s", "latency_at_10pct_s",
            "policy", "hold_spans", "eot_spans"}
    assert all(keys <= set(r) for r in out)
    assert [r["policy"] for r in out] == ["p_eot_0.5s x action delay x timeout", "p_eot_1s x action delay x timeout",
                                          "p_eot_2s x action delay x timeout", "p_eot_3s x action delay x timeout",
                                          "ema p_eot_2s x action delay x timeout", "vad (silence timer)"]
    holds = [s["end"] - s["start"] for r in rows for s in r["silence_spans"][:-1]]
    kept = [d for d in holds if 0.2 <= d <= 5.0]
    assert out[-1]["hold_spans"] == len(kept) >= 2 and out[-1]["eot_spans"] == 3
    # The silence timer at 0.3 s (the slowest allowed by a 300 ms budget) cuts every hold longer than that.
    assert out[-1]["false_cutoff_rate_300ms"] == pytest.approx(np.mean([d > 0.3 + 1e-9 for d in kept]), abs=1e-4)
    grid = sorted({*np.round(np.arange(0.2, 1.001, 0.1), 2), *np.round(np.arange(1.0, 3.501, 0.5), 2)})
    assert out[-1]["latency_at_10pct_s"] == min(d for d in grid if np.mean([h > d + 1e-9 for h in kept]) <= 0.1)


def test_a_folder_without_the_columns_is_named(tmp_path):
    pd.DataFrame([{"id": "a", "audio": {"array": [0.0], "sampling_rate": 16000}}]).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"missing eot-bench columns \['language', 'silence_spans'\]"):
        load_eotbench(tmp_path)
    with pytest.raises(ValueError, match="no parquet files"):
        load_eotbench(tmp_path / "empty")
