"""How training uses this machine: the number format it multiplies in, and how many threads the model step
takes.

**Number format.**
bfloat16 keeps float32's range with 8 bits of mantissa: enough for the products of a forward and backward
pass while the weights, the optimiser and the loss stay float32 (mixed precision, Micikevicius et al. 2018,
with bf16 needing no loss scaling). It pays only where the hardware multiplies it natively: a GPU, or a CPU
with AMX or AVX-512 BF16, where a matrix product of the embedded model's sizes runs about 8x faster than in
float32. Elsewhere it is emulated and slower than float32, so "auto" checks first.

**Threads.** A model step on several threads meets at a barrier after each operation; when another process
holds one of the cores, the others wait for the descheduled thread, and a two-thread step on two shared cores
runs several times slower than a one-thread step. `cores_shared` tells the training loop when to step on one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bf16(device: str = "cpu") -> bool:
    """Whether this machine multiplies bfloat16 natively: a CUDA device, or a CPU with AMX or AVX-512 BF16."""
    if device.startswith("cuda"):
        return torch.cuda.is_available()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: assume not, float32 is never wrong
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def training_precision(precision: str, device: str = "cpu") -> str:
    """"auto" -> "bfloat16" where native, else "float32"; the other two as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return precision


def cores_shared() -> bool:
    """Whether other work runs on this machine's cores: the 1-minute load average, less this process's own
    model threads and batch thread, above half a busy core. (Low on purpose: one extra process is enough to
    stall a two-thread step, while a step on one thread when the cores were free after all costs little.)"""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return load - (torch.get_num_threads() + 1) > 0.5


def fit_threads(free: int, shared: int, log=print) -> int:
    """Give the model step `free` threads, or `shared` while other work shares the cores; says when it
    changes. Returns the count in use."""
    busy = cores_shared()
    n = shared if busy else free
    if n and n != torch.get_num_threads():
        torch.set_num_threads(n)
        log(f"model step on {n} thread{'s' if n > 1 else ''}" + (", other work shares the cores" if busy else ""))
    return torch.get_num_threads()
