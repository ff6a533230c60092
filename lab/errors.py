"""The errors of model loading, in a module of their own: the loaders (lab.checkpoint, lab.hub, lab.kyutai)
all raise them, and none of those should have to import another to do so."""

from __future__ import annotations

import json
from pathlib import Path


class CheckpointError(ValueError):
    """A model folder or file that cannot be loaded; the message names the file and the tensor."""


def diagnose_safetensors(path: Path) -> str:
    """Why a safetensors file does not load, naming the first tensor cut off where the header is readable.

    The layout: 8 bytes (little-endian header length), a JSON header {name: {dtype, shape, data_offsets}},
    then the data; offsets count from the end of the header.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"truncated: {size} bytes, not even the 8-byte header length"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"truncated or corrupt: the header claims {n} bytes, the file has {size}"
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "corrupt header"
    available = size - 8 - n
    try:
        entries = sorted((int(v["data_offsets"][1]), name) for name, v in header.items() if name != "__metadata__")
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return "corrupt header"
    for end, name in entries:
        if end > available:
            return f"truncated: tensor {name!r} needs bytes up to {end}, the data section has {available}"
    return "corrupt"
