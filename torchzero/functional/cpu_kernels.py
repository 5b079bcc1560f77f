"""CPU kernels for the fused fast path, compiled from ``cpu_kernels.c`` at first use.

torch's fused Adam writes the gradient, multiplied by ``1 / grad_scale``, back into its input,
so folding a clip factor into it costs a copy of the gradients when ``p.grad`` must stay
untouched. The Adam kernel here reads the gradient, scales it in registers and updates ``p``,
``exp_avg`` and ``exp_avg_sq`` in one pass over contiguous float32/float64 CPU tensors; the
reduction kernels compute the sums and sums of squares of all gradients (the non-finite check,
the norms) in one call that reads each tensor once.

The library is built with the system C compiler (``$CC``, else ``cc``) into a cache directory
(``$TORCHZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchzero`` or ``~/.cache/torchzero``), keyed
by the source, the compiler and the CPU, and reused by later processes. Loading runs the
library's code, so only a library this user built is loaded: the directory must be owned by
the user and writable by no one else, and the file too, and its SHA-256 must be the one
recorded beside it when it was built. Otherwise (and when the cache can't be written) it is
built in a fresh private temporary directory. A corrupt or incomplete cached file is rebuilt;
processes started together (the ranks of a job) build once, under a file lock. Where there is
no compiler or nothing loads, :func:`library` returns ``None`` (with one warning) and the fast
path uses torch's fused kernels instead. ``TORCHZERO_CPU_KERNELS=0`` turns the kernels off.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["library", "eligible", "usable", "sum", "sumsq", "adam_", "ADAM_SCALARS"]

_SOURCE = Path(__file__).with_suffix(".c")
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c11"]
_ABI = 3
#: The per-tensor scalars of :func:`adam_`, in the order the C code reads them.
ADAM_SCALARS = ("gmul", "lerp_weight", "beta2", "one_minus_beta2", "bc2", "eps", "scale", "weight_decay", "lr")
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}
#: How long a process waits for another one (a rank started at the same time) to finish building.
_LOCK_TIMEOUT_S = 600.0

_lib: ctypes.CDLL | None = None
_tried = False


class _Unusable(Exception):
    """The library file can't be used (absent, not private, corrupt, missing symbols)."""


def _cache_dir() -> Path | None:
    """The shared cache: ``$TORCHZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchzero`` or
    ``~/.cache/torchzero``; ``None`` if there is no home to put it in."""
    if d := os.environ.get("TORCHZERO_CACHE_DIR"):
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return None if base.startswith("~") else Path(base) / "torchzero"


def _private(path: Path, *, directory: bool) -> str | None:
    """Why ``path`` can't be trusted (``None`` if it can): it must be a real directory or regular
    file (not a link), owned by this user and writable by no one else."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"can't be read ({e.strerror})"
    if directory and not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("flags", "model name", "Features", "CPU part"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile(cc: str, directory: Path, name: str) -> None:
    """Builds the library into ``directory/name`` with its SHA-256 beside it (``name.sha256``);
    both appear by rename, so a reader never sees a partial file."""
    tmp = Path(tempfile.mkdtemp(dir=directory))
    try:
        out = tmp / name
        subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", str(out), "-lm"], capture_output=True, check=True, timeout=300)
        os.chmod(out, 0o700)
        (tmp / "sha256").write_text(_digest(out))
        os.replace(out, directory / name)
        os.replace(tmp / "sha256", directory / f"{name}.sha256")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open(path: Path) -> ctypes.CDLL:
    """Loads a library this user built (checked: private, and its SHA-256 as recorded at build
    time) and declares its functions.

    Raises:
        _Unusable: it isn't there, isn't private, is corrupt, or lacks a function.
    """
    side = path.with_name(path.name + ".sha256")
    for f in (path, side):
        why = _private(f, directory=False)
        if why is not None:
            raise _Unusable(f"{f} {why}")
    if side.read_text().strip() != _digest(path):
        raise _Unusable(f"{path} does not match its recorded SHA-256 (a partial or corrupted file)")
    try:
        lib = ctypes.CDLL(str(path))
        if lib.tz_abi_version() != _ABI:
            raise _Unusable(f"{path} is of another version")
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
    except (OSError, AttributeError) as e:  # not a library of ours, a missing symbol
        raise _Unusable(f"{path}: {e}") from None
    return lib


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Holds an exclusive lock on ``path`` (created if needed) while building, so that processes
    started together build once; yields ``False`` if the lock couldn't be had in time."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield True
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _build() -> ctypes.CDLL | None:
    """The kernels: loaded from the cache if a verified build is there, else built (once for all
    processes sharing the cache), else, if that fails, rebuilt once in a private directory;
    ``None`` (with one warning) if none of that gives a working library."""
    if os.environ.get("TORCHZERO_CPU_KERNELS", "1") == "0" or platform.system() != "Linux":
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    problems: list[str] = []
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
        key = hashlib.sha256("\0".join([_SOURCE.read_text(), cc, version, " ".join(_FLAGS), _cpu_id()]).encode()).hexdigest()[:16]
        name = f"cpu_kernels_{key}.so"
        shared = _cache_dir()
        if shared is not None:
            try:
                shared.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as e:
                problems.append(f"the cache directory {shared} can't be created ({e.strerror})")
                shared = None
        if shared is not None and (why := _private(shared, directory=True)) is not None:
            warnings.warn(
                f"torchzero: the kernel cache directory {shared} {why}, so a library found there could be someone "
                "else's; building the CPU kernels in a private temporary directory instead (set TORCHZERO_CACHE_DIR "
                "to a directory only you can write)",
                RuntimeWarning,
                stacklevel=4,
            )
            shared = None
        if shared is not None:
            with _locked(shared / f"{name}.lock") as held:
                if held:
                    try:
                        return _open(shared / name)
                    except _Unusable:
                        pass  # absent, or corrupt: (re)build it
                    try:
                        _compile(cc, shared, name)
                        return _open(shared / name)
                    except _Unusable as e:
                        problems.append(str(e))
        # no shared cache, or its build didn't load: build once in a private directory
        private = Path(tempfile.mkdtemp(prefix="torchzero-kernels-"))
        _compile(cc, private, name)
        return _open(private / name)
    except (OSError, subprocess.SubprocessError, _Unusable) as e:
        detail = e.stderr.decode(errors="replace").strip().splitlines()[:3] if isinstance(e, subprocess.CalledProcessError) and e.stderr else []
        problems.append(f"{e}{': ' + ' / '.join(detail) if detail else ''}")
        warnings.warn(
            f"torchzero: could not build the CPU kernels ({'; '.join(problems)}); using torch's fused kernels instead "
            "(set TORCHZERO_CPU_KERNELS=0 to silence this)",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call; ``None`` where they can't be had."""
    global _lib, _tried
    if not _tried:
        _tried = True
        _lib = _build()
    return _lib


_Parameter = torch.nn.Parameter


def eligible(*tensors: Tensor) -> bool:
    """Whether the kernels can take these tensors: plain contiguous CPU float32/float64 tensors
    of one dtype (no DTensor, no other subclass)."""
    dtype = tensors[0].dtype
    if dtype not in _DTYPES:
        return False
    for t in tensors:  # a plain loop: this runs for every tensor on every step
        kind = type(t)
        if (kind is not Tensor and kind is not _Parameter) or t.dtype is not dtype or not t.is_cpu or not t.is_contiguous():
            return False
    return True


def usable(*tensors: Tensor) -> bool:
    """Whether to run these tensors on the kernels: :func:`eligible`, built, and not being traced
    by ``torch.compile`` (which fuses torch ops itself and can't trace a foreign call)."""
    return not torch.compiler.is_compiling() and eligible(*tensors) and library() is not None


def _ptrs(tensors: Sequence[Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*map(Tensor.data_ptr, tensors))


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
    rows: Sequence[Mapping[str, float]],
    row: Sequence[int],
) -> None:
    r"""One Adam step for each parameter, in place, reading ``grads`` only.

    Per tensor ``i``, with the scalars of ``rows[row[i]]``, a mapping with every name of
    :data:`ADAM_SCALARS` (passed to the kernel in that order, so no caller depends on it):
    $g = \text{gmul}\,\nabla$, $m \leftarrow \operatorname{lerp}(m, g, w)$,
    $v \leftarrow \beta_2 v + (1-\beta_2) g^2$ ($\hat v = \max(\hat v, v)$ with ``max_exp_avg_sq``),
    $u = \text{scale}\, m / (\sqrt{v} / \text{bc2} + \epsilon) + \text{wd}\, p$, $p \leftarrow p - \text{lr}\, u$.
    All tensors eligible and of one dtype.
    """
    lib = library()
    assert lib is not None
    n = len(params)
    flat = (ctypes.c_double * (len(rows) * len(ADAM_SCALARS)))(*[float(r[k]) for r in rows for k in ADAM_SCALARS])
    numel = (ctypes.c_int64 * n)(*[p.numel() for p in params])
    vmax = None if max_exp_avg_sq is None else _ptrs(max_exp_avg_sq)
    getattr(lib, f"tz_adam_{_DTYPES[params[0].dtype]}")(
        n, _ptrs(params), _ptrs(grads), _ptrs(exp_avg), _ptrs(exp_avg_sq), vmax, numel, flat,
        (ctypes.c_int32 * n)(*row), torch.get_num_threads(),
    )
