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

__all__ = ["CpuFeatures", "Precision", "choose_precision", "cpu_features", "prefers_int8"]

Precision = Literal["int8", "bf16", "fp32"]
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

    @property
    def vnni(self) -> bool:
        """int8 dot products in one instruction (AVX512-VNNI, AVX-VNNI)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni"})


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


def prefers_int8(requested: str, features: CpuFeatures) -> tuple[bool, str]:
    """Whether the image tower should run in int8 (ONNX Runtime, ``vision_int8``), and why.

    "auto" takes int8 on x86 CPUs with VNNI and no AMX: measured on AMD EPYC with
    AVX512-VNNI and AVX512-BF16, static int8 ran ViT-B/32 at 1.35x torch bf16 (batch 32);
    on a Xeon with AMX, torch bf16 ran 1.25x ONNX Runtime int8, so AMX keeps bf16.
    "int8" asks for it anyway; "bf16" and "fp32" never take it.
    """
    choice = requested.strip().lower()
    if choice == "int8":
        if features.vnni:
            return True, "int8 requested"
        return True, "int8 requested, but the CPU has no VNNI instructions: expect it slower"
    if choice != "auto":
        return False, f"{choice} requested"
    if features.machine not in ("x86_64", "amd64", "i686", "x86"):
        return False, f"no measured int8 gain on {features.machine or 'this CPU'}"
    if features.amx_bf16:
        return False, "AMX-BF16 runs bf16 faster than int8"
    if features.vnni:
        unit = "AVX512-VNNI" if "avx512_vnni" in features.flags else "AVX-VNNI"
        return True, f"CPU has {unit} and no AMX: int8 measured faster than bf16"
    return False, "no int8 dot-product instructions (VNNI) on this CPU"


def _bf16_unit(features: CpuFeatures) -> str:
    return "AMX-BF16" if features.amx_bf16 else "AVX512-BF16"
