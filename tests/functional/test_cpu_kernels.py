"""torchzero's CPU kernels against torch: the Adam pass against ``torch._fused_adam(w)_`` and a
float64 reference written from the Adam paper, the sums of squares against torch; and the build
falling back cleanly where there is no compiler."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from torchzero.functional import cpu_kernels

pytestmark = pytest.mark.skipif(cpu_kernels.library() is None, reason="no C compiler here: the kernels are not built")

# sizes around the thread split (32K elements per thread) and the 2048-element blocks, and empty
SIZES = {
    "tiny": [1, 3, 0, 17],
    "blocks": [2047, 2048, 2049, 4096 + 5],
    "threads": [32768 * 2 + 1, 100_000, 7, 65_536],
}


def _tensors(sizes, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=dtype) for n in sizes]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("sizes", list(SIZES), ids=list(SIZES))
def test_sumsq_matches_torch(sizes, dtype):
    xs = _tensors(SIZES[sizes], dtype)
    got = cpu_kernels.sumsq(xs)
    want = [float(x.double().square().sum()) for x in xs]
    assert got == pytest.approx(want, rel=1e-6 if dtype == torch.float32 else 1e-12, abs=0)


def test_sumsq_propagates_nonfinite():
    xs = _tensors([10, 50_000, 100_000], torch.float32)
    xs[1][12_345] = float("nan")
    xs[2][-1] = float("inf")
    got = cpu_kernels.sumsq(xs)
    assert got[0] == pytest.approx(float(xs[0].double().square().sum()))
    assert got[1] != got[1] and got[2] == float("inf")


def _reference_adam(p, g, m, v, vmax, step, lr, b1, b2, eps, wd, gmul, alpha):
    """Adam in float64 from the paper (Kingma & Ba, Algorithm 1), with a gradient multiplier,
    decoupled weight decay added to the update (Loshchilov & Hutter) and AMSGrad's maximum."""
    p, g, m, v = (t.double().clone() for t in (p, g, m, v))
    g = g * gmul
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vhat = v if vmax is None else torch.maximum(vmax.double(), v)
    u = alpha * (m / (1 - b1**step)) / ((vhat / (1 - b2**step)).sqrt() + eps) + wd * p
    return p - lr * u, m, v, vhat


CONFIGS = {
    "adam": dict(b1=0.9, b2=0.999, eps=1e-8, wd=0.0, gmul=1.0, alpha=1.0, ams=False),
    "clip-factor": dict(b1=0.9, b2=0.999, eps=1e-8, wd=0.0, gmul=0.37, alpha=1.0, ams=False),
    "adamw": dict(b1=0.9, b2=0.99, eps=1e-6, wd=0.01, gmul=1.0, alpha=1.0, ams=False),
    "amsgrad-alpha": dict(b1=0.8, b2=0.999, eps=1e-8, wd=0.0, gmul=2.5, alpha=0.5, ams=True),
    "small-beta1": dict(b1=0.3, b2=0.9, eps=1e-8, wd=0.1, gmul=1.0, alpha=1.0, ams=True),  # lerp weight >= 0.5
}


def _rows(n, step, lr, c):
    b1, b2 = c["b1"], c["b2"]
    row = dict(gmul=c["gmul"], lerp_weight=1 - b1, beta2=b2, one_minus_beta2=1 - b2, bc2=(1 - b2**step) ** 0.5,
               eps=c["eps"], scale=c["alpha"] / (1 - b1**step), weight_decay=c["wd"], lr=lr)
    return [row], [0] * n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("sizes", list(SIZES), ids=list(SIZES))
@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_adam_matches_reference(config, sizes, dtype):
    c = CONFIGS[config]
    n = SIZES[sizes]
    params = _tensors(n, dtype, 1)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    vmax = [torch.zeros_like(p) for p in params] if c["ams"] else None
    ref = [(p.double().clone(), mi.double().clone(), vi.double().clone(), None if vmax is None else vmax[i].double().clone()) for i, (p, mi, vi) in enumerate(zip(params, m, v))]
    # float32: a few roundings of O(1) inputs, so absolute error ~1e-7 where m or v cancel to near 0
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    for step in range(1, 6):
        grads = _tensors(n, dtype, 10 + step)
        raw = [g.clone() for g in grads]
        cpu_kernels.adam_(params, grads, m, v, vmax, *_rows(len(n), step, 1e-2, c))
        for g, r in zip(grads, raw):
            assert torch.equal(g, r)  # the gradient is only read
        for i, g in enumerate(grads):
            rp, rm, rv, rmax = ref[i]
            ref[i] = _reference_adam(rp, g, rm, rv, rmax, step, 1e-2, c["b1"], c["b2"], c["eps"], c["wd"], c["gmul"], c["alpha"])
            if not c["ams"]:
                ref[i] = ref[i][:3] + (None,)
    for i, p in enumerate(params):
        torch.testing.assert_close(p.double(), ref[i][0], **tol)
        torch.testing.assert_close(m[i].double(), ref[i][1], **tol)
        torch.testing.assert_close(v[i].double(), ref[i][2], **tol)


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_adam_matches_torch_fused(decoupled):
    """Same inputs through torch's fused kernel (grad_scale = 1 / factor) and through ours."""
    n = [5000, 70_000, 3]
    lr, wd, factor = 1e-3, 0.05, 0.25
    a = _tensors(n, torch.float32, 2)
    b = [p.clone() for p in a]
    ma, va = [torch.zeros_like(p) for p in a], [torch.zeros_like(p) for p in a]
    mb, vb = [torch.zeros_like(p) for p in a], [torch.zeros_like(p) for p in a]
    for step in range(1, 11):
        grads = _tensors(n, torch.float32, 100 + step)
        c = dict(b1=0.9, b2=0.999, eps=1e-8, wd=wd if decoupled else 0.0, gmul=factor, alpha=1.0)
        # torch's AdamW: p *= 1 - lr * wd, then the Adam step; ours adds wd * p to the update: the same math
        cpu_kernels.adam_(a, grads, ma, va, None, *_rows(len(n), step, lr, c))
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        st = [torch.tensor(float(step))] * len(n)
        kernel(b, [g.clone() for g in grads], mb, vb, [], st, amsgrad=False, lr=lr, beta1=0.9, beta2=0.999,
               weight_decay=wd if decoupled else 0.0, eps=1e-8, maximize=False, grad_scale=torch.tensor(1 / factor), found_inf=None)
    for x, y in zip(a + ma + va, b + mb + vb):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)


def test_adam_propagates_nonfinite_like_torch():
    # nonfinite="propagate" hands NaN gradients to the kernel: they reach exactly the elements they touch
    p = _tensors([40_000], torch.float32)
    g = _tensors([40_000], torch.float32, 3)
    g[0][7] = float("nan")
    m, v = [torch.zeros_like(p[0])], [torch.zeros_like(p[0])]
    cpu_kernels.adam_(p, g, m, v, None, *_rows(1, 1, 1e-3, CONFIGS["adam"]))
    bad = ~torch.isfinite(p[0])
    assert bad.nonzero().flatten().tolist() == [7]


@pytest.mark.parametrize(
    "env, why",
    [({"TORCHZERO_CPU_KERNELS": "0"}, "turned off"), ({"CC": "/nonexistent/cc"}, "no compiler")],
    ids=["env-off", "no-compiler"],
)
def test_fallback_to_torch_kernels(tmp_path, env, why):
    """Without the kernels the fast path runs on torch's fused kernels and gives the same result."""
    code = (
        "import torch, torchzero as tz, warnings\n"
        "from torchzero.functional import cpu_kernels\n"
        "warnings.simplefilter('ignore')\n"
        "assert cpu_kernels.library() is None\n"
        "torch.manual_seed(0)\n"
        "w = torch.nn.Parameter(torch.randn(100))\n"
        "opt = tz.Modular([w], tz.m.ClipNorm(1.0, dim='global'), tz.m.Adam(), tz.m.LR(0.1))\n"
        "for _ in range(3):\n"
        "    w.grad = torch.randn(100); opt.step()\n"
        "print(repr(w.detach().sum().item()))\n"
    )
    run_env = {**os.environ, "TORCHZERO_CACHE_DIR": str(tmp_path), **env}
    out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    torch.manual_seed(0)
    import torchzero as tz

    w = torch.nn.Parameter(torch.randn(100))
    opt = tz.Modular([w], tz.m.ClipNorm(1.0, dim="global"), tz.m.Adam(), tz.m.LR(0.1), fused=False)
    for _ in range(3):
        w.grad = torch.randn(100)
        opt.step()
    assert float(out.stdout) == pytest.approx(w.detach().sum().item(), rel=1e-5)


def test_build_is_cached_and_reused(tmp_path):
    code = "from torchzero.functional import cpu_kernels\nprint(cpu_kernels.library()._name)\n"
    env = {**os.environ, "TORCHZERO_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and first.stdout.startswith(str(tmp_path))
    name = os.path.basename(first.stdout.strip())
    assert sorted(f.name for f in tmp_path.iterdir()) == [name, f"{name}.lock", f"{name}.sha256"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_sum_matches_torch(dtype):
    xs = _tensors(SIZES["threads"] + SIZES["tiny"], dtype, 4)
    got = cpu_kernels.sum(xs)
    want = [float(x.double().sum()) for x in xs]
    assert got == pytest.approx(want, rel=1e-5 if dtype == torch.float32 else 1e-12, abs=1e-3 if dtype == torch.float32 else 1e-9)


def test_adam_rows_per_tensor():
    """Tensors with their own rows of scalars (groups, lagging step counts) in one call equal
    separate calls."""
    n = [3000, 50_000, 70_000]
    cs = [CONFIGS["adam"], CONFIGS["adamw"], CONFIGS["amsgrad-alpha"] | {"ams": False}]
    steps = [4, 1, 7]
    rows = [_rows(1, s, lr, c)[0][0] for s, lr, c in zip(steps, [1e-3, 1e-2, 3e-4], cs)]
    a = _tensors(n, torch.float32, 5)
    b = [p.clone() for p in a]
    ma, va = [torch.rand_like(p) for p in a], [torch.rand_like(p) for p in a]
    mb, vb = [m.clone() for m in ma], [v.clone() for v in va]
    grads = _tensors(n, torch.float32, 6)
    cpu_kernels.adam_(a, grads, ma, va, None, [rows[2], rows[0], rows[1]], [1, 2, 0])
    for i, r in zip(range(3), rows):  # tensor i reads row 1, 2, 0 of the list above: rows[i]
        cpu_kernels.adam_([b[i]], [grads[i]], [mb[i]], [vb[i]], None, [r], [0])
    for x, y in zip(a + ma + va, b + mb + vb):
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_tensor_norms_on_the_kernel_match_torch(dtype):
    """torchzero.functional.norms takes L2 norms of CPU tensors from the kernel: same values as
    torch.linalg.vector_norm, NaN and inf included, empty tensors 0."""
    from torchzero.functional.norms import global_norm, tensor_norms

    xs = _tensors(SIZES["threads"] + SIZES["tiny"], dtype, 7)
    xs.append(torch.tensor(3.0, dtype=dtype))
    xs[1][5] = float("inf")
    xs[2][0] = float("nan")
    got = tensor_norms(xs, 2.0)
    want = [torch.linalg.vector_norm(x) for x in xs]
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.shape == ()
        torch.testing.assert_close(g, w, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0, equal_nan=True)
    finite = [x for i, x in enumerate(xs) if i not in (1, 2)]
    torch.testing.assert_close(global_norm(finite, 2.0), torch.linalg.vector_norm(torch.cat([x.reshape(-1) for x in finite])), rtol=1e-6, atol=0)


def test_unwritable_cache_falls_back_to_temp(tmp_path):
    """A cache directory that can't be created (here: a path under a file) makes the build use a
    private temporary directory."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = (
        "import tempfile, warnings\n"
        "warnings.simplefilter('error')\n"
        "from torchzero.functional import cpu_kernels\n"
        "lib = cpu_kernels.library()\n"
        "assert lib is not None and lib._name.startswith(tempfile.gettempdir()), lib\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCHZERO_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(blocker)  # <file>/torchzero can't be created
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("threads", [1, 3])
def test_results_do_not_depend_on_the_thread_count(threads):
    """Adam is elementwise, and the sums add fixed blocks in a fixed order: both bitwise the same
    with any number of threads."""
    n = [100_000, 3, 70_001]
    row = _rows(len(n), 2, 1e-3, CONFIGS["adamw"])
    outs = []
    sums = []
    before = torch.get_num_threads()
    try:
        for t in (before, threads):
            torch.set_num_threads(t)
            p = _tensors(n, torch.float32, 8)
            g = _tensors(n, torch.float32, 9)
            m, v = [torch.full_like(x, 0.1) for x in p], [torch.full_like(x, 0.2) for x in p]
            cpu_kernels.adam_(p, g, m, v, None, *row)
            outs.append(p + m + v)
            sums.append(cpu_kernels.sumsq(g))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    assert sums[0] == sums[1]


# ------------------------------------------------------------------ the cache can't run someone else's code
_PLANT = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("MARKER", "w"); if (f) { fputs("ran", f); fclose(f); }
}
int tz_abi_version(void) { return 3; }
"""

_LOAD = (
    "import warnings, sys\n"
    "from torchzero.functional import cpu_kernels\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always')\n"
    "    lib = cpu_kernels.library()\n"
    "    import torch\n"
    "    assert cpu_kernels.sumsq([torch.ones(5000)]) == [5000.0]\n"
    "print(lib._name)\n"
    "print('WARNINGS:', ' | '.join(str(x.message) for x in w))\n"
)


def _library_name(tmp_path) -> str:
    """The file name the kernels get for this source, compiler and CPU (built once to learn it)."""
    env = {**os.environ, "TORCHZERO_CACHE_DIR": str(tmp_path / "probe")}
    out = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return os.path.basename(out.stdout.splitlines()[0])


def _plant(directory, name: str, marker, *, sidecar: bool) -> None:
    import hashlib

    src = directory / "planted.c"
    src.write_text(_PLANT.replace("MARKER", str(marker)))
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(directory / name)], check=True, timeout=120)
    src.unlink()
    if sidecar:
        (directory / f"{name}.sha256").write_text(hashlib.sha256((directory / name).read_bytes()).hexdigest())


def _load(cache) -> tuple[str, str]:
    env = {**os.environ, "TORCHZERO_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return lines[0], lines[1]


needs_cc = pytest.mark.skipif(cpu_kernels.library() is None, reason="no C compiler here")


@needs_cc
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=["world-writable", "group-writable", "other-writable"])
def test_a_library_planted_in_a_shared_directory_is_not_loaded(tmp_path, mode):
    name = _library_name(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "marker"
    _plant(cache, name, marker, sidecar=True)
    os.chmod(cache, mode)
    loaded, warned = _load(cache)
    assert not marker.exists(), "the planted library's code ran"
    assert not loaded.startswith(str(cache)) and "writable by group or others" in warned


@needs_cc
def test_a_planted_library_without_a_matching_digest_is_rebuilt_not_loaded(tmp_path):
    name = _library_name(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    _plant(cache, name, marker, sidecar=False)
    (cache / f"{name}.sha256").write_text("0" * 64)
    loaded, warned = _load(cache)
    assert not marker.exists(), "the planted library's code ran"
    assert loaded == str(cache / name) and warned == "WARNINGS: "


@needs_cc
def test_a_library_owned_by_someone_else_is_not_loaded(tmp_path):
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    name = _library_name(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    _plant(cache, name, marker, sidecar=True)
    os.chown(cache / name, 12345, 12345)
    loaded, _ = _load(cache)
    assert not marker.exists(), "the planted library's code ran"
    assert os.stat(loaded).st_uid == os.getuid()  # rebuilt by us (here: in its place)


@needs_cc
def test_a_corrupt_cached_library_is_rebuilt_once(tmp_path):
    cache = tmp_path / "cache"
    loaded, _ = _load(cache)
    path = cache / os.path.basename(loaded)
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk or a killed copy
    loaded2, warned = _load(cache)
    assert loaded2 == loaded and warned == "WARNINGS: "
    built = path.stat().st_mtime_ns
    _load(cache)
    assert path.stat().st_mtime_ns == built, "rebuilt again although the file was fine"


@needs_cc
def test_a_library_missing_a_function_is_replaced_by_a_private_build(tmp_path):
    """A file that passes the checks (ours, digest recorded) but lacks a function: rebuilt once
    in a private directory; never an AttributeError out of a step."""
    name = _library_name(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    _plant(cache, name, marker, sidecar=True)
    os.chmod(cache / name, 0o700)
    loaded, warned = _load(cache)
    assert loaded != str(cache / name) and os.path.basename(loaded) == name and warned == "WARNINGS: "


@needs_cc
def test_processes_started_together_build_once(tmp_path):
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc"
    wrapper.write_text(f"#!/bin/sh\ncase \"$*\" in *--version*) ;; *) echo built >> {log};; esac\nexec cc \"$@\"\n")
    os.chmod(wrapper, 0o755)
    env = {**os.environ, "TORCHZERO_CACHE_DIR": str(tmp_path / "cache"), "CC": str(wrapper)}
    procs = [subprocess.Popen([sys.executable, "-c", _LOAD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert log.read_text().count("built") == 1
    assert len({o.splitlines()[0] for o, _ in outs}) == 1


def test_adam_rows_need_every_scalar():
    """A row missing a scalar the kernel reads is refused (rows are read by name, not position)."""
    if cpu_kernels.library() is None:
        pytest.skip("no C compiler here")
    p, g, m, v = (torch.zeros(4) for _ in range(4))
    row = _rows(1, 1, 1e-3, CONFIGS["adam"])[0][0]
    del row["bc2"]
    with pytest.raises(KeyError, match="bc2"):
        cpu_kernels.adam_([p], [g], [m], [v], None, [row], [0])
