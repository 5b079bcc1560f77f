"""CPU kernels for the fused fast path, compiled from ``cpu_kernels.c`` at first use.

torch's fused Adam writes the gradient, multiplied by ``1 / grad_scale``, back into its input,
so folding a clip factor into it costs a copy of the gradients when ``p.grad`` must stay
untouched. The Adam kernel here reads the gradient, scales it in registers and updates ``p``,
``exp_avg`` and ``exp_avg_sq`` in one pass over contiguous float32/float64 CPU tensors; the
reduction kernels compute the sums and sums of squares of all gradients (the non-finite check,
the norms) in one call that reads each tensor once.

The library is built with the system C compiler (``$CC``, else ``cc``) into a cache directory
(``$TORCHZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchzero`` or ``~/.cache/torchzero``, else a
private directory under the system's temp dir if that one isn't writable), keyed by the source,
the compiler and the CPU, and reused by later processes. Where there is no compiler
or the build fails, :func:`library` returns ``None`` and the fast path uses torch's fused kernels
instead. ``TORCHZERO_CPU_KERNELS=0`` turns the kernels off.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["library", "eligible", "usable", "sum", "sumsq", "adam_", "ADAM_SCALARS"]

_SOURCE = Path(__file__).with_suffix(".c")
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c11"]
_ABI = 2
#: The per-tensor scalars of :func:`adam_`, in the order the C code reads them.
ADAM_SCALARS = ("gmul", "lerp_weight", "beta2", "one_minus_beta2", "bc2", "eps", "scale", "weight_decay", "lr")
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_lib: ctypes.CDLL | None = None
_tried = False


def _cache_dirs() -> list[Path]:
    """Where to build, in order of preference: the configured cache, then a private temp dir."""
    if d := os.environ.get("TORCHZERO_CACHE_DIR"):
        return [Path(d)]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return [Path(base) / "torchzero", Path(tempfile.gettempdir()) / f"torchzero-{uid}"]


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("flags", "model name", "Features", "CPU part"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _built(cc: str, name: str) -> Path:
    """The library in the first usable cache directory, compiled there if it isn't yet."""
    error: OSError | None = None
    for d in _cache_dirs():
        target = d / name
        if target.exists():
            return target
        try:
            d.mkdir(parents=True, exist_ok=True)
            # build under a private name, then rename: concurrent processes never load a partial file
            with tempfile.TemporaryDirectory(dir=d) as tmp:
                out = Path(tmp) / name
                subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", str(out), "-lm"], capture_output=True, check=True, timeout=300)
                os.replace(out, target)
            return target
        except OSError as e:  # not writable: try the next directory
            error = e
    assert error is not None
    raise error


def _build() -> ctypes.CDLL | None:
    if os.environ.get("TORCHZERO_CPU_KERNELS", "1") == "0" or platform.system() != "Linux":
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
        key = hashlib.sha256("\0".join([_SOURCE.read_text(), cc, version, " ".join(_FLAGS), _cpu_id()]).encode()).hexdigest()[:16]
        target = _built(cc, f"cpu_kernels_{key}.so")
        lib = ctypes.CDLL(str(target))
        if lib.tz_abi_version() != _ABI:
            return None
    except (OSError, subprocess.SubprocessError) as e:
        detail = e.stderr.decode(errors="replace").strip().splitlines()[:3] if isinstance(e, subprocess.CalledProcessError) and e.stderr else []
        warnings.warn(
            f"torchzero: could not build the CPU kernels ({e}{': ' + ' / '.join(detail) if detail else ''}); "
            "using torch's fused kernels instead (set TORCHZERO_CPU_KERNELS=0 to silence this)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    ptrs = ctypes.POINTER(ctypes.c_void_p)
    i64 = ctypes.POINTER(ctypes.c_int64)
    f64 = ctypes.POINTER(ctypes.c_double)
    i32 = ctypes.POINTER(ctypes.c_int32)
    for s in _DTYPES.values():
        for name in (f"tz_sumsq_{s}", f"tz_sum_{s}"):
            getattr(lib, name).argtypes = [ctypes.c_int64, ptrs, i64, f64, ctypes.c_int]
            getattr(lib, name).restype = ctypes.c_int
        getattr(lib, f"tz_adam_{s}").argtypes = [ctypes.c_int64, ptrs, ptrs, ptrs, ptrs, ptrs, i64, f64, i32, ctypes.c_int]
        getattr(lib, f"tz_adam_{s}").restype = None
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call; ``None`` where they can't be had."""
    global _lib, _tried
    if not _tried:
        _tried = True
        _lib = _build()
    return _lib


_PLAIN = (Tensor, torch.nn.Parameter)


def eligible(*tensors: Tensor) -> bool:
    """Whether the kernels can take these tensors: plain contiguous CPU float32/float64 tensors
    of one dtype (no DTensor, no other subclass)."""
    dtype = tensors[0].dtype
    if dtype not in _DTYPES:
        return False
    for t in tensors:  # a plain loop: this runs for every tensor on every step
        if type(t) not in _PLAIN or not t.is_cpu or t.dtype != dtype or not t.is_contiguous():
            return False
    return True


def usable(*tensors: Tensor) -> bool:
    """Whether to run these tensors on the kernels: :func:`eligible`, built, and not being traced
    by ``torch.compile`` (which fuses torch ops itself and can't trace a foreign call)."""
    return not torch.compiler.is_compiling() and eligible(*tensors) and library() is not None


def _ptrs(tensors: Sequence[Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


def _reduce(kind: str, tensors: Sequence[Tensor]) -> list[float]:
    lib = library()
    assert lib is not None
    n = len(tensors)
    out = (ctypes.c_double * n)()
    numel = (ctypes.c_int64 * n)(*[t.numel() for t in tensors])
    if getattr(lib, f"tz_{kind}_{_DTYPES[tensors[0].dtype]}")(n, _ptrs(tensors), numel, out, torch.get_num_threads()):
        raise MemoryError(f"torchzero: out of memory in the CPU {kind} kernel")
    return list(out)


def sumsq(tensors: Sequence[Tensor]) -> list[float]:
    """Sum of squares of each tensor (blocks of 2048 elements summed in the dtype, block sums in
    double); all eligible, one dtype."""
    return _reduce("sumsq", tensors)


def sum(tensors: Sequence[Tensor]) -> list[float]:  # noqa: A001 (the kernel's name)
    """Sum of each tensor, accumulated like :func:`sumsq`; all eligible, one dtype."""
    return _reduce("sum", tensors)


def adam_(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avg: Sequence[Tensor],
    exp_avg_sq: Sequence[Tensor],
    max_exp_avg_sq: Sequence[Tensor] | None,
    rows: Sequence[Sequence[float]],
    row: Sequence[int],
) -> None:
    r"""One Adam step for each parameter, in place, reading ``grads`` only.

    Per tensor ``i``, with the scalars ``rows[row[i]]`` named by :data:`ADAM_SCALARS`:
    $g = \text{gmul}\,\nabla$, $m \leftarrow \operatorname{lerp}(m, g, w)$,
    $v \leftarrow \beta_2 v + (1-\beta_2) g^2$ ($\hat v = \max(\hat v, v)$ with ``max_exp_avg_sq``),
    $u = \text{scale}\, m / (\sqrt{v} / \text{bc2} + \epsilon) + \text{wd}\, p$, $p \leftarrow p - \text{lr}\, u$.
    All tensors eligible and of one dtype.
    """
    lib = library()
    assert lib is not None
    n = len(params)
    flat = (ctypes.c_double * (len(rows) * len(ADAM_SCALARS)))(*[float(x) for r in rows for x in r])
    numel = (ctypes.c_int64 * n)(*[p.numel() for p in params])
    vmax = None if max_exp_avg_sq is None else _ptrs(max_exp_avg_sq)
    getattr(lib, f"tz_adam_{_DTYPES[params[0].dtype]}")(
        n, _ptrs(params), _ptrs(grads), _ptrs(exp_avg), _ptrs(exp_avg_sq), vmax, numel, flat,
        (ctypes.c_int32 * n)(*row), torch.get_num_threads(),
    )
