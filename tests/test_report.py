"""bench/report.py: the tables of bench/README.md agree with their result files, and a table edited by hand
(or a result file re-run without regenerating) is caught."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_tables_agree_with_their_result_files(report):
    assert report.main(["--check"]) == 0


def test_check_fails_when_a_table_and_its_file_disagree(report, tmp_path, capsys):
    doc = tmp_path / "README.md"
    doc.write_text((BENCH / "README.md").read_text().replace("| 6 | 20.1 |", "| 6 | 19.0 |", 1))
    assert report.main(["--check", str(doc)]) == 1
    assert f"{doc}: flush" in capsys.readouterr().err
    assert report.main([str(doc)]) == 0  # regenerated from the file
    assert report.main(["--check", str(doc)]) == 0 and "| 6 | 20.1 |" in doc.read_text()


def test_an_unknown_table_is_an_error(report, tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("<!-- report:nope -->\n<!-- /report:nope -->\n")
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        report.main(["--check", str(doc)])


def test_rows_measured_on_tones_say_so_in_the_table(report, tmp_path, monkeypatch):
    rows, _ = report.rows_of("flush", "latency_flush.jsonl", "latency_bench.jsonl")
    assert report.not_speech(rows) == ""  # speech, or measured before rows said what they were measured on
    tones = "tones, not speech (speech synthesis failed: RuntimeError: libespeak-ng.so.1 not found)"
    (tmp_path / "latency_flush.jsonl").write_text("".join(json.dumps({**r, "audio": tones}) + "\n" for r in rows))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert f"**Audio: {tones}.**" in report.flush_table()
    (tmp_path / "latency_flush.jsonl").write_text(
        "".join(json.dumps({**r, "audio": "synthetic speech (lab.synth turns)"}) + "\n" for r in rows))
    assert "Audio:" not in report.flush_table()


def test_the_resample_table_reads_its_result_file(report, tmp_path, monkeypatch):
    result = json.loads((BENCH / "results/resample.json").read_text())
    table = report.resample_table()
    assert "| 48 kHz | soxr.ResampleStream (HQ) |" in table and "load average" in table
    soxr48 = next(r for r in result["rows"] if r["rate_in"] == 48_000 and r["resampler"].startswith("soxr"))
    soxr48["max_abs_chunked_vs_whole"] = 1e-3  # a resampler whose output depended on the chunking
    (tmp_path / "resample.json").write_text(json.dumps(result))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert "| **no** (1.0e-03) |" in report.resample_table()
