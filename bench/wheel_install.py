"""dsm-lab as a user installs it: build the sdist and the wheel, install the wheel into a fresh virtual
environment with the core dependencies only, and from a folder outside the checkout transcribe a sample
and load the embedded model; then (--lab) add the [lab] extra and run a notebook headless.

Measured: build time, wheel and sdist size, install times (torch first, pinned, as `make setup` does; then
the wheel with its core dependencies; then [lab]), and the installed size by part. Every step is checked:
the script exits non-zero on the first failure, so CI runs it as a test (.ci/run).

    python bench/wheel_install.py [--lab] [--out bench/results/wheel_install.json]

Times depend on the network and on pip's cache (a machine that installed these versions before reuses its
downloads): the JSON records the pip cache in use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # as the Makefile pins it: an unpinned torch would pull a multi-GB CUDA build
SAMPLE, SAMPLE_TEXT = "timer.wav", "set a timer for five minutes"
NOTEBOOK, NOTEBOOK_PARAMETERS = "01_delayed_streams.ipynb", {"N_CLIPS": 2, "MAX_ROWS": 12}
# what must be inside the wheel (paths in the archive)
REQUIRED = ["lab/data/models/dsm-tiny-en/config.json", "lab/data/models/dsm-tiny-en/model.safetensors",
            "lab/data/models/dsm-tiny-en/tokenizer.model", "lab/data/models/dsm-tiny-en-d6/model.safetensors",
            f"lab/data/samples/{SAMPLE}", "lab/data/samples/timer.json", f"lab/notebooks/{NOTEBOOK}",
            "lab/widgets/widgets.css"]
EXTRA_MODULES = ("IPython", "ipykernel", "ipywidgets", "anywidget", "traitlets", "jupyter_client", "jupyterlab",
                 "nbformat", "nbclient", "zmq", "matplotlib", "sounddevice")


def clean_env() -> dict:
    """The environment without anything that would import lab from the checkout instead of the wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run(command: list, cwd: Path, what: str) -> tuple[str, float]:
    """Run a step; its stdout and seconds. A failing step ends the script with its output."""
    t0 = time.monotonic()
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=clean_env(), capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"{what}: {elapsed:.1f} s", flush=True)
    return result.stdout, elapsed


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def installed_sizes(venv: Path) -> dict:
    site = site_packages(venv)
    parts = {"total": tree_size(venv), "torch": sum(tree_size(p) for p in site.glob("torch*")),
             "dsm_lab": tree_size(site / "lab")}
    parts["other_dependencies"] = tree_size(site) - parts["torch"] - parts["dsm_lab"]
    return {f"{k}_mib": mib(v) for k, v in parts.items()}


def build(work: Path) -> tuple[Path, dict]:
    dist = work / "dist"
    _, seconds = run([sys.executable, "-m", "build", "--outdir", dist, ROOT], work, "python -m build")
    wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        sys.exit(f"{wheel.name} lacks {missing}")
    return wheel, {"build_s": round(seconds, 1), "wheel": wheel.name, "wheel_mib": mib(wheel.stat().st_size),
                   "sdist_mib": mib(sdist.stat().st_size), "wheel_files": len(names)}


def check_core(python: Path, outside: Path) -> dict:
    """From a folder that is not the checkout: the CLI transcribes a sample shipped in the wheel, and
    `import lab; lab.load()` imports nothing of the [lab] extra."""
    where, _ = run([python, "-c", "import lab.resources as r; print(r.samples_root())"], outside, "find samples")
    sample = Path(where.strip()) / SAMPLE
    if site_packages(python.parent.parent) not in sample.parents:
        sys.exit(f"the sample was found at {sample}, not inside the fresh environment")
    dsm_lab = python.parent / "dsm-lab"
    out, transcribe_s = run([dsm_lab, "transcribe", sample], outside, f"dsm-lab transcribe {SAMPLE}")
    transcript = out.strip().splitlines()[-1]
    # The model writes as Kyutai's STT does (capitals, final punctuation); the words are what must match.
    if " ".join(re.sub(r"[^\w\s']", " ", transcript.lower()).split()) != SAMPLE_TEXT:
        sys.exit(f"dsm-lab transcribe printed {out!r}, expected the words {SAMPLE_TEXT!r} last")
    version, _ = run([dsm_lab, "--version"], outside, "dsm-lab --version")
    code = ("import sys, lab; m = lab.load(); "
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {EXTRA_MODULES!r}))")
    modules, _ = run([python, "-c", code], outside, "import lab; lab.load()")
    if modules.strip() != "[]":
        sys.exit(f"import lab pulled modules of the [lab] extra: {modules.strip()}")
    return {"transcribe_s": round(transcribe_s, 1), "transcript": transcript, "version": version.strip(),
            "extra_modules_imported": []}


def check_lab(python: Path, outside: Path) -> dict:
    """The course as a pip user gets it: the notebooks copied out, one run headless in a kernel."""
    course = outside / "course"
    run([python.parent / "dsm-lab", "notebooks", course], outside, "dsm-lab notebooks")
    code = ("import json, sys; from lab.widgets.notebooks import run_notebook, env_for_kernel, output_types; "
            f"nb = run_notebook(sys.argv[1], {NOTEBOOK_PARAMETERS!r}, timeout=300, "
            "env=env_for_kernel(OMP_NUM_THREADS='1', MPLBACKEND='module://matplotlib_inline.backend_inline')); "
            "print(json.dumps(output_types(nb)))")
    out, seconds = run([python, "-c", code, course / NOTEBOOK], outside, f"run {NOTEBOOK}")
    counts = json.loads(out.strip().splitlines()[-1])
    if counts.get("error") or not counts.get("image/png"):
        sys.exit(f"{NOTEBOOK} ran with outputs {counts}: errors, or no figure")
    return {"notebook": NOTEBOOK, "notebook_s": round(seconds, 1), "notebook_figures": counts["image/png"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", action="store_true", help="also install [lab] and run a notebook headless")
    ap.add_argument("--out", default=None, help="write the results here (JSON)")
    args = ap.parse_args(argv)
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    result = {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count(),
              "pip_cache": "on" if pip_cache.returncode == 0 else "off"}
    with tempfile.TemporaryDirectory(prefix="dsm-wheel-") as tmp:
        work = Path(tmp)
        wheel, built = build(work)
        result.update(built)
        venv = work / "venv"
        python = venv / "bin" / "python"
        _, result["venv_s"] = run([sys.executable, "-m", "venv", venv], work, "python -m venv")
        run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], work, "pip upgrade")
        _, result["torch_install_s"] = run([python, "-m", "pip", "install", "-q", TORCH], work, f"pip install {TORCH}")
        _, result["core_install_s"] = run([python, "-m", "pip", "install", "-q", wheel], work, "pip install wheel")
        result["core_installed"] = installed_sizes(venv)
        outside = work / "elsewhere"
        outside.mkdir()
        result.update(check_core(python, outside))
        if args.lab:
            _, result["lab_install_s"] = run([python, "-m", "pip", "install", "-q", f"{wheel}[lab]"], work,
                                             "pip install wheel[lab]")
            result["lab_installed"] = installed_sizes(venv)
            result.update(check_lab(python, outside))
        for key in ("venv_s", "torch_install_s", "core_install_s", "lab_install_s"):
            if key in result:
                result[key] = round(result[key], 1)
        shutil.rmtree(venv)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
