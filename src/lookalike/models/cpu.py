"""What this CPU can do fast, and the numeric precision the fast runtime picks from it.

bf16 pays only where the CPU multiplies bf16 natively: AMX tiles (Intel Sapphire
Rapids and later) or AVX512-BF16 (Intel Cooper Lake, AMD Zen 4 and later). Elsewhere
PyTorch emulates it, slower than fp32, so ``auto`` falls back to fp32. The check
reads the kernel's CPU flags at run time (never at import time), and the caller can
inject its own ``CpuFeatures`` (tests, or a machine whose flags lie).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lookalike.errors import ConfigError

__all__ = ["CpuFeatures", "Precision", "choose_precision", "cpu_features"]

Precision = Literal["bf16", "fp32"]
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU flags that matter here (lower-case, as /proc/cpuinfo spells them)."""

    flags: frozenset[str] = frozenset()
    machine: str = ""

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.flags and "amx_tile" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def bf16(self) -> bool:
        return self.amx_bf16 or self.avx512_bf16


def cpu_features(cpuinfo: Path = _CPUINFO) -> CpuFeatures:
    """The flags of the first CPU in ``/proc/cpuinfo``; none where there is no such file."""
    machine = platform.machine().lower()
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return CpuFeatures(frozenset(), machine)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return CpuFeatures(frozenset(value.lower().split()), machine)
    return CpuFeatures(frozenset(), machine)


def choose_precision(requested: str, features: CpuFeatures) -> tuple[Precision, str]:
    """The precision to run the image tower in, and why (for ``lookalike models``).

    ``requested`` is "auto", "bf16" or "fp32". "auto" takes bf16 only on x86 CPUs
    with AMX-BF16 or AVX512-BF16 (the only ones measured to gain from it).
    """
    choice = requested.strip().lower()
    if choice == "fp32":
        return "fp32", "fp32 requested"
    if choice == "bf16":
        if features.bf16:
            return "bf16", f"bf16 requested; CPU has {_bf16_unit(features)}"
        return "bf16", "bf16 requested, but the CPU has no bf16 instructions: expect it slower"
    if choice != "auto":
        raise ConfigError(
            f"unknown precision {requested!r}: use auto, bf16 or fp32", field="runtime"
        )
    if features.machine not in ("x86_64", "amd64", "i686", "x86"):
        return "fp32", f"no measured bf16 gain on {features.machine or 'this CPU'}"
    if features.bf16:
        return "bf16", f"CPU has {_bf16_unit(features)}"
    return "fp32", "no bf16 support on this CPU (needs AMX-BF16 or AVX512-BF16)"


def _bf16_unit(features: CpuFeatures) -> str:
    return "AMX-BF16" if features.amx_bf16 else "AVX512-BF16"
