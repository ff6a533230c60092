"""The package as users install it: the files it ships (models, samples, notebooks) found through
importlib.resources and declared as package data, a core that imports no Jupyter, widget, plotting or audio
device module, the [lab] extra named when a widget is asked for without it, the notebooks copied out, the
version. The wheel itself, installed into a fresh virtual environment, is checked by bench/wheel_install.py
(run by .ci/run)."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import lab
from lab.cli import main
from lab.course import copy_notebooks, lab_command
from lab.metrics import normalize
from lab.resources import models_root, notebooks_root, package_path, samples_root

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Modules of the [lab], [serve] and [formats] extras (and what they pull in): none may be imported by the core.
EXTRA_MODULES = ("IPython", "ipykernel", "ipywidgets", "anywidget", "traitlets", "jupyter_client", "jupyter_core",
                 "jupyterlab", "nbformat", "nbclient", "zmq", "matplotlib", "sounddevice", "websockets", "msgpack",
                 "praatio", "webvtt", "pysrt", "librosa")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=180)


def test_shipped_files_are_found_inside_the_package():
    package = Path(lab.__file__).parent
    assert models_root() == package / "data" / "models" and samples_root() == package / "data" / "samples"
    assert lab.checkpoint.default_model_dir() == models_root() / "dsm-tiny-en"
    for name in ("dsm-tiny-en", "dsm-tiny-en-d2", "dsm-tiny-en-d6", "dsm-tiny-en-d12"):
        files = {p.name for p in (models_root() / name).iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.model"} <= files
    assert {p.stem for p in samples_root().glob("*.wav")} == {p.stem for p in samples_root().glob("*.json")} != set()
    assert len(list(notebooks_root().glob("*.ipynb"))) == 7
    toy_tts = {p.name for p in package_path("data", "tts", "dsm-toy-tts").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.model", "sentences.json"} <= toy_tts


def test_every_shipped_file_is_declared_as_package_data():
    """A file under lab/data or lab/notebooks that no package-data pattern matches would be in a checkout
    and missing from the wheel: the difference this package must not have."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["lab"]
    package = package_path()
    folders = (models_root(), samples_root(), notebooks_root(), package_path("data", "tts"))
    shipped = [p for folder in folders for p in folder.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts]
    assert len(shipped) > 20
    undeclared = [str(p.relative_to(package)) for p in shipped
                  if not any(fnmatch.fnmatch(str(p.relative_to(package)), pat) for pat in patterns)]
    assert undeclared == []


def test_core_imports_no_jupyter_widget_plot_or_audio_device_module(tmp_path):
    code = ("import sys, lab\n"
            "model = lab.load()\n"
            "t = model.transcribe(str(lab.resources.samples_root() / 'timer.wav'))\n"
            "from lab import cli, evaluate, turns, benchmarks, hook_bench, live_turns, batch, latency, prelabel, tts\n"
            "from lab.items import imports, check\n"
            f"print(t.text); print(sorted(m for m in sys.modules if m.split('.')[0] in {EXTRA_MODULES!r}))")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    text, modules = result.stdout.splitlines()[-2:]
    assert normalize(text) == "set a timer for five minutes" and modules == "[]"


def test_without_the_lab_extra_the_core_works_and_widgets_name_the_extra(tmp_path):
    """The [lab] extra's modules made unimportable (None in sys.modules, as if not installed)."""
    code = ("import sys\n"
            f"for name in {EXTRA_MODULES!r}: sys.modules[name] = None\n"
            "import lab\n"
            "from lab.cli import main\n"
            "assert main(['transcribe', str(lab.resources.samples_root() / 'weather.wav')]) == 0\n"
            "try:\n    from lab import widgets\nexcept ModuleNotFoundError as e:\n    print('widgets:', e)\n"
            "from lab import plots\n"
            "try:\n    plots.plot_eot_tradeoff({})\nexcept ModuleNotFoundError as e:\n    print('plots:', e)\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "what is the weather in paris" in [normalize(line) for line in out]
    assert any(line.startswith("widgets: lab.widgets needs") and 'pip install "dsm-lab[lab]"' in line for line in out)
    assert 'plots: lab.plots needs matplotlib, which is not installed: pip install "dsm-lab[lab]"' in out


def test_notebooks_are_copied_out_and_never_overwritten_silently(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path / "course")]) == 0
    copied = sorted((tmp_path / "course").glob("*.ipynb"))
    assert [p.name for p in copied] == sorted(p.name for p in notebooks_root().glob("*.ipynb"))
    assert json.loads(copied[0].read_text())["cells"]  # a notebook, not an empty file
    copied[0].write_text("{}")  # the user's work
    capsys.readouterr()
    assert main(["notebooks", str(tmp_path / "course")]) == 2
    assert "already there" in capsys.readouterr().err and copied[0].read_text() == "{}"
    assert copy_notebooks(tmp_path / "course", keep_existing=True) == [] and copied[0].read_text() == "{}"
    assert main(["notebooks", str(tmp_path / "course"), "--overwrite"]) == 0 and copied[0].read_text() != "{}"
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        copy_notebooks(tmp_path / "file")


def test_lab_command_runs_jupyterlab_from_this_python(tmp_path):
    command = lab_command(tmp_path)
    assert command[:4] == [sys.executable, "-m", "jupyterlab", str(tmp_path)]
    assert ("--allow-root" in command) == (os.getuid() == 0)


def test_version_and_license(capsys):
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lab.__version__"}
    assert PYPROJECT["project"]["license"] == "MIT"  # an SPDX expression, not the deprecated table
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"dsm-lab {lab.__version__}"
    assert lab.__version__.count(".") == 2 and all(part.isdigit() for part in lab.__version__.split("."))
