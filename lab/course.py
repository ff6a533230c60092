"""The teaching notebooks, for users without a checkout: they ship inside the package (lab/notebooks) and
are copied out to a folder of the user's, where they can be run and changed without touching the package.

    dsm-lab notebooks DIR      copy the notebooks into DIR
    dsm-lab lab [DIR]          copy them (those not there yet), then open JupyterLab on DIR
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .resources import notebooks_root

DEFAULT_DIR = "dsm-lab-notebooks"


def shipped_notebooks() -> list[Path]:
    found = sorted(notebooks_root().glob("*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks in {notebooks_root()}: the package was installed without them")
    return found


def copy_notebooks(dest: str | os.PathLike, overwrite: bool = False, keep_existing: bool = False) -> list[Path]:
    """Copy the shipped notebooks into `dest` (created if needed); returns the files written.

    A notebook already in `dest` may hold the user's work: it is an error unless `overwrite` (replace it) or
    `keep_existing` (leave it, copy only the missing ones)."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest} exists and is not a folder")
    sources = shipped_notebooks()
    present = [dest / p.name for p in sources if (dest / p.name).exists()]
    if present and not (overwrite or keep_existing):
        raise FileExistsError(f"{', '.join(str(p) for p in present)} already there (your changes?); "
                              "pass --overwrite to replace them, or copy into another folder")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = dest / source.name
        if target.exists() and keep_existing:
            continue
        shutil.copyfile(source, target)
        written.append(target)
    return written


def lab_command(folder: Path) -> list[str]:
    """JupyterLab on `folder`, from this Python; it refuses to run as root unless told (containers often are)."""
    command = [sys.executable, "-m", "jupyterlab", str(folder)]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    return command


def open_lab(dest: str | os.PathLike = DEFAULT_DIR) -> int:
    """Copy the notebooks not yet in `dest`, then run JupyterLab there until it is stopped."""
    from .extras import require

    require("jupyterlab", "dsm-lab lab")
    dest = Path(dest)
    written = copy_notebooks(dest, keep_existing=True)
    print(f"{len(written)} notebook(s) copied into {dest}" if written else f"notebooks already in {dest}")
    return subprocess.call(lab_command(dest))
