"""bench/report.py: the tables of bench/README.md agree with their result files, and a table edited by hand
(or a result file re-run without regenerating) is caught."""

from __future__ import annotations

import importlib.util
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
