"""Running the notebooks headless, with parameters (the papermill idea, in a few lines).

    nb = run_notebook("lab/notebooks/02_live_microphone.ipynb", {"SOURCE": "file", "SPEED": 4.0})
    output_types(nb)      # {"image/png": 1, "text/html": 3, ...}

The cell tagged "parameters" keeps its defaults and gets one assignment per override appended, so the
notebook reads as written and the overrides are visible in the executed copy. The kernel is a real
ipykernel started from a kernelspec written on the fly for this Python (`sys.executable`), so the notebook
runs in the same environment as the caller, whatever kernelspecs the machine has.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import nbformat

PARAMETERS_TAG = "parameters"
KERNEL_NAME = "dsm-lab-python"


def parameters_cell(nb) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.metadata.get("tags", []):
            return i
    raise ValueError("notebook has no code cell tagged 'parameters'")


def set_parameters(nb, values: dict):
    """Append `NAME = value` lines to the parameters cell (values written with repr). Returns nb."""
    if not values:
        return nb
    i = parameters_cell(nb)
    lines = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells[i].source = nb.cells[i].source.rstrip("\n") + "\n# injected parameters\n" + lines + "\n"
    return nb


def write_kernelspec(root: Path, env: dict | None = None) -> Path:
    """A kernelspec folder under `root`/kernels for this Python, with extra environment variables."""
    folder = Path(root) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "dsm-lab (this Python)", "language": "python", "env": env or {}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder.parent


def run_notebook(path, parameters: dict | None = None, timeout: float = 180, cwd=None, env: dict | None = None):
    """Execute a notebook in a fresh kernel; returns the executed notebook (raises on the first error)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    path = Path(path)
    nb = set_parameters(nbformat.read(path, as_version=4), parameters or {})
    with tempfile.TemporaryDirectory(prefix="dsm-kernel-") as tmp:
        ksm = KernelSpecManager(kernel_dirs=[str(write_kernelspec(Path(tmp), env))])
        km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL_NAME,
                                resources={"metadata": {"path": str(cwd or path.parent)}})
        client.execute()
    return nb


def output_types(nb) -> Counter:
    """How many outputs of each MIME type the executed notebook holds (plus "error" and "stream")."""
    counts: Counter = Counter()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type in ("error", "stream"):
                counts[out.output_type] += 1
            for mime in out.get("data", {}):
                counts[mime] += 1
    return counts


def strip_outputs(path) -> bool:
    """Remove outputs and execution counts in place (notebooks are committed without them). True if changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, path)
    return changed


def env_for_kernel(**extra) -> dict:
    """Environment additions for a notebook kernel: keep the ones given, pass DSM_LAB_MODELS through."""
    env = {k: v for k, v in extra.items() if v is not None}
    if os.environ.get("DSM_LAB_MODELS"):
        env.setdefault("DSM_LAB_MODELS", os.environ["DSM_LAB_MODELS"])
    return env
