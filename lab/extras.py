"""Optional dependencies: the core (`import lab`, load, transcribe, stream, hooks, the CLI) needs none of
them; the notebooks' widgets, figures and microphones need the [lab] extra, `dsm-lab serve` and lab.remote
the [serve] extra. Asking for one of those without it raises an error that names the extra to install, not a
bare ModuleNotFoundError."""

from __future__ import annotations

import importlib
from types import ModuleType

# module imported -> the extra of pyproject.toml that installs it
EXTRA_OF = {
    "matplotlib": "lab", "ipywidgets": "lab", "anywidget": "lab", "traitlets": "lab", "IPython": "lab",
    "sounddevice": "lab", "nbformat": "lab", "nbclient": "lab", "jupyter_client": "lab", "jupyterlab": "lab",
    "librosa": "lab",
    "pyarrow": "eotbench", "websockets": "serve", "msgpack": "serve",
    "praatio": "formats", "webvtt": "formats", "pysrt": "formats",
}


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message says which extra brings it."""


def missing_extra(error: ModuleNotFoundError, what: str) -> ModuleNotFoundError:
    """The error to raise for `error` (a failed import while providing `what`): a MissingExtra naming the
    extra when the missing module belongs to one, else `error` itself (a real bug, not an extra)."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return error
    return MissingExtra(f"{what} needs {top}, which is not installed: pip install \"dsm-lab[{extra}]\"",
                        name=error.name)


def require(module: str, what: str) -> ModuleType:
    """Import `module` for `what` (e.g. "lab.plots"), or raise MissingExtra naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise missing_extra(e, what) from e
