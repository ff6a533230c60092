"""Every notebook runs headless, end to end, in a real ipykernel, with the embedded model.

Small parameters are injected into each notebook's "parameters" cell (lab.widgets.notebooks.set_parameters),
the notebook is executed by nbclient in a kernel started from a kernelspec written for this Python, and the
test checks what came out: figures (image/png) and tables (text/html), not only that no cell raised. The
committed notebooks themselves must carry no outputs, a parameters cell first, and thin code cells.
"""

from __future__ import annotations

import time

import nbformat
import pytest

from lab.resources import notebooks_root
from lab.widgets.notebooks import env_for_kernel, output_types, parameters_cell, run_notebook

NOTEBOOKS = notebooks_root()

# notebook -> (parameters for CI, at least this many figures, at least this many tables)
CASES = {
    "00_how_dsm_learns.ipynb": ({"SECONDS": 30, "MAX_STEPS": 150}, 4, 4),
    "01_delayed_streams.ipynb": ({"N_CLIPS": 2, "MAX_ROWS": 12}, 4, 5),
    "02_live_microphone.ipynb": ({"SOURCE": "file", "SPEED": 4.0, "WAIT_S": 60, "MIN_SILENCE_S": 0.45,
                                  "THRESHOLD": 0.7}, 1, 2),
    "03_turn_detection.ipynb": ({"N_ITEMS": 8}, 3, 2),
    "04_latency.ipynb": ({"N_CLIPS": 2, "FLUSH_DELAYS": (2, 6), "TRIALS": 2, "BATCH_SIZES": (1, 4),
                          "BATCH_STEPS": 3, "SERVE_CLIENTS": (1, 2), "SERVE_SECONDS": 3}, 7, 4),
    "05_why_did_it_cut_me_off.ipynb": ({"N_PROBES": 2, "KINDS": ("numbers", "short_answers"), "STEPS_BACK": 3},
                                       4, 3),
    "06_the_other_direction.ipynb": ({"SENTENCES": 2, "N_ITER": 16}, 3, 2),
}
BUDGET_S = 180  # each notebook, on the CI machine (2 cores)


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_is_committed_clean_and_thin(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: strip the outputs"
    assert parameters_cell(nb) == next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"), \
        f"{name}: the parameters cell must be the first code cell"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for c in code[1:]:
        calls = [line for line in c.source.splitlines() if line.strip() and not line.startswith(("import", "from"))]
        assert len(calls) <= 4, f"{name}: a notebook cell should be one or two calls into lab:\n{c.source}"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) // 2, f"{name}: tell the story"


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_S + 60)
@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_headless(name, tmp_path):
    parameters, figures, tables = CASES[name]
    env = env_for_kernel(OMP_NUM_THREADS="1",  # a 5 M model on a shared 2-core machine: one thread
                         DSM_LAB_CACHE=str(tmp_path / "cache"), MPLBACKEND="module://matplotlib_inline.backend_inline")
    t0 = time.monotonic()
    nb = run_notebook(NOTEBOOKS / name, parameters, timeout=BUDGET_S, env=env)
    elapsed = time.monotonic() - t0
    nbformat.write(nb, tmp_path / name)  # the executed copy, for a look when something is off
    counts = output_types(nb)
    assert counts["error"] == 0
    assert counts["image/png"] >= figures, f"{name}: {counts}"
    assert counts["text/html"] >= tables, f"{name}: {counts}"
    assert elapsed < BUDGET_S, f"{name} took {elapsed:.0f} s"
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    assert "Traceback" not in streams, streams


def own_recordings(folder):
    """Two sample clips as items of your own: two channels (the other speaker silent), labelled pauses,
    one word without times."""
    import numpy as np

    from lab.items import write_item
    from lab.widgets import tables

    for name in ("timer", "weather"):
        clip = tables.sample(name)
        words = [dict(w) for w in clip.words]
        words[1] = {"text": words[1]["text"]}
        pauses = [{"start": p["start"], "end": p["end"], "label": "hold" if p["kind"] == "mid_turn" else "shift"}
                  for p in clip.meta["pauses"]]
        write_item(folder / f"{name}.json", {"audio": f"{name}.wav", "speakers": ["user", "agent"], "words": words,
                                             "turns": clip.meta["turns"], "pauses": pauses},
                   np.stack([clip.audio, np.zeros_like(clip.audio)], 1), clip.sample_rate)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_S + 60)
@pytest.mark.parametrize("name", ["03_turn_detection.ipynb", "04_latency.ipynb"])
def test_turn_and_latency_labs_run_on_your_own_recordings(name, tmp_path):
    """One parameter, ITEMS, points the notebook at a folder in the item format instead of the synthetic one."""
    folder = own_recordings(tmp_path / "my-calls")
    parameters, figures, tables = CASES[name]
    env = env_for_kernel(OMP_NUM_THREADS="1", DSM_LAB_CACHE=str(tmp_path / "cache"),
                         MPLBACKEND="module://matplotlib_inline.backend_inline")
    nb = run_notebook(NOTEBOOKS / name, {**parameters, "ITEMS": str(folder)}, timeout=BUDGET_S, env=env)
    counts = output_types(nb)
    assert counts["error"] == 0 and counts["image/png"] >= figures and counts["text/html"] >= tables, counts
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("turns-*"))  # nothing synthesized
    html = [str(o.get("data", {}).get("text/html", "")) for c in nb.cells for o in c.get("outputs", [])]
    if name.startswith("03"):  # the transcription summary: two items, the words with times counted
        summary = next(h for h in html if ">wer<" in h)
        assert "<td>2</td>" in summary, summary
    else:  # the per-word latency table: words of the two clips
        assert any(">minutes.<" in h or ">minutes<" in h for h in html), html[:3]
