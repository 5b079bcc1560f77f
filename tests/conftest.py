"""Shared test helpers."""
from __future__ import annotations

import torch


def make_params(shapes, seed: int = 0, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """Leaf tensors of the given shapes with seeded random values."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def small_mlp(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """5 -> 8 (tanh) -> 3, seeded: the model of the optimizer-against-reference tests."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


def train_small_mlp(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, scale: float = 1.0) -> None:
    """``steps`` steps of ``scale * mean(sin(model(x))**2)`` on seeded batches of 16 (the same
    batches for every model trained with it)."""
    g = torch.Generator().manual_seed(1)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(16, 5, generator=g).to(dtype)
        opt.zero_grad()
        (scale * model(x).sin() ** 2).mean().backward()
        opt.step()


class SmallCNN(torch.nn.Module):
    """conv 3x3 (2 -> ``channels``) -> tanh -> linear (-> ``hidden``) -> tanh -> linear (-> 3),
    times a 0-dim scale: a 4-D, two 2-D, vector and 0-dim parameters, for 2x6x6 inputs."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, channels, 3)
        self.fc = torch.nn.Linear(channels * 4 * 4, hidden)
        self.head = torch.nn.Linear(hidden, 3)
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fc(torch.tanh(self.conv(x)).flatten(1)))) * self.scale


def small_cnn(channels: int, hidden: int, dtype: torch.dtype = torch.float64) -> SmallCNN:
    """:class:`SmallCNN`, seeded (the same weights for every call with the same sizes)."""
    torch.manual_seed(0)
    return SmallCNN(channels, hidden).to(dtype)


def train_small_cnn(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, classes: int = 3, seed: int = 1) -> None:
    """``steps`` steps of cross-entropy on seeded batches of 16 float64 2x6x6 images with labels
    in ``range(classes)`` (the same batches for every model trained with the same ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 2, 6, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, classes, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def assert_same_state(opt_a, opt_b, rtol: float, atol: float) -> None:
    """Two optimizers hold the same state: the same keys per parameter, tensors close, the rest equal."""
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert sa[i].keys() == sb[i].keys()
        for k in sa[i]:
            if isinstance(sa[i][k], torch.Tensor):
                torch.testing.assert_close(sa[i][k], sb[i][k], rtol=rtol, atol=atol)
            else:
                assert sa[i][k] == sb[i][k], (i, k)


def set_grads(params, seed: int) -> None:
    """Fills ``p.grad`` with seeded random values."""
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


# ---------------------------------------------------------------------------------------------
# Reliability report: counts of the trust categories, written after the run when
# TZ_RELIABILITY_REPORT names a file (CI writes docs/reliability.md before building the docs).
RELIABILITY_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    # first match wins: file-specific categories come first
    ("Non-finite gradients (policy: skip / raise / propagate)", ("test_nonfinite",)),
    ("Model and state changes that reach a kernel (each in a subprocess)", ("test_state_check",)),
    ("Corrupted or foreign state dicts (a failed load changes nothing)", ("test_load_validation",)),
    ("Kernel cache (planted, corrupt, concurrent builds)", ("test_cpu_kernels.py::test_a_", "test_cpu_kernels.py::test_processes")),
    ("Settings as NumPy/tensor scalars, fractions, decimals; size bounds", ("test_settings_normalized",)),
    ("PyTorch conformance (against torch.optim on torch's own inputs)", ("tests/conformance",)),
    ("Checkpoints (state_dict, new process, deepcopy, pickle, DCP)", ("test_checkpoint", "test_deepcopy", "test_copy_steps", "dcp", "test_clipping_checkpoint")),
    ("Bad input rejected at construction", ("test_bad_argument", "test_clipping_validation", "test_construction_errors", "test_bad_", "test_duplicate", "test_parameter_in_two_groups", "test_sparse")),
    ("Zero, missing, 0-dim and zero-size gradients", ("test_zero_gradients", "test_missing_gradient", "test_grad_none")),
    ("Dtypes and devices (fp16, bf16, fp64, complex, mixed)", ("test_dtypes", "test_mixed_dtypes", "test_complex")),
    ("AMP (GradScaler, autocast)", ("test_amp",)),
    ("torch.compile", ("test_compile",)),
    ("Distributed (DDP, FSDP2)", ("tests/distributed",)),
    ("Soak (10,000 steps)", ("test_soak",)),
]

_outcomes: dict[str, list[int]] = {}


def pytest_runtest_logreport(report):  # noqa: D103
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for name, needles in RELIABILITY_CATEGORIES:
        if any(n in report.nodeid for n in needles):
            counts = _outcomes.setdefault(name, [0, 0, 0])  # passed, failed, skipped
            counts[0 if report.passed else 1 if report.failed else 2] += 1
            break


def _stamp(torch_version: str, python_version: str, machine: str) -> str:
    """When, on what and from which commit the report was made."""
    import datetime
    import os
    import subprocess

    from torchzero.functional import cpu_kernels

    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=os.path.dirname(__file__)).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    cpu = machine
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), machine)
    except OSError:
        pass
    kernels = "torchzero's CPU kernels" if cpu_kernels.library() is not None else "torch's fused kernels (no C compiler)"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Run {when} at commit `{commit}`, on {cpu} ({os.cpu_count()} cores), torch {torch_version}, "
            f"Python {python_version}; the fused Adam path used {kernels}.")


def pytest_sessionfinish(session, exitstatus):  # noqa: D103
    import os
    import platform

    path = os.environ.get("TZ_RELIABILITY_REPORT")
    if not path or not _outcomes or hasattr(session.config, "workerinput"):  # (pytest-xdist: the controller writes it)
        return
    lines = [
        "# Reliability",
        "",
        "Counts from the test suite's trust categories, written by the test run itself "
        "(`TZ_RELIABILITY_REPORT=docs/reliability.md python -m pytest`). Each category is "
        "parametrised over the registry of all modules (`tests/registry/`), so a new module is "
        "covered automatically. See the [trust guide](guide/trust.md) for what each category checks.",
        "",
        "| category | cases tried | passed | failed | skipped |",
        "|---|---:|---:|---:|---:|",
    ]
    total = [0, 0, 0]
    for name, _ in RELIABILITY_CATEGORIES:
        p, f, s = _outcomes.get(name, [0, 0, 0])
        total = [total[0] + p, total[1] + f, total[2] + s]
        lines.append(f"| {name} | {p + f + s} | {p} | {f} | {s} |")
    lines.append(f"| **all** | **{sum(total)}** | **{total[0]}** | **{total[1]}** | **{total[2]}** |")
    import torch

    lines += ["", _stamp(torch.__version__, platform.python_version(), platform.machine())]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def step_in_lockstep(params, opt, ref_params, ref_opt, steps: int, missing: int | None = None) -> None:
    """Steps two optimizers on the same seeded gradients; with ``missing``, that parameter gets
    no gradient on every third step (on both sides)."""
    for step in range(steps):
        set_grads(params, step)
        set_grads(ref_params, step)
        if missing is not None and step % 3 == 0:
            params[missing].grad = None
            ref_params[missing].grad = None
        opt.step()
        ref_opt.step()


# ---------------------------------------------------------------------------------------------
# The quick subset: `python -m pytest -m "not slow"` leaves out what starts processes, compiles,
# builds the site or trains for thousands of steps (each listed here with why); the full suite
# is what CI runs.
SLOW: list[tuple[str, str]] = [
    ("tests/test_compile.py", "torch.compile traces and compiles each chain"),
    ("tests/distributed/", "starts several processes (torch.distributed)"),
    ("tests/test_soak.py", "10,000 steps"),
    ("tests/test_examples.py", "runs the example scripts"),
    ("tests/test_examples_showdown.py", "runs the example scripts"),
    ("tests/test_examples_gallery.py::test_fresh_runs", "trains the showdown's chains over several seeds"),
    ("tests/test_site.py", "builds the documentation site"),
    ("tests/core/test_state_check.py::test_case_fails_cleanly_or_steps", "a subprocess per kernel choice"),
    ("tests/core/test_checkpoint.py::test_resume_in_new_process", "a new process"),
    ("tests/functional/test_cpu_kernels.py::test_a_", "builds the kernels in subprocesses"),
    ("tests/functional/test_cpu_kernels.py::test_processes", "builds the kernels in subprocesses"),
    ("tests/functional/test_cpu_kernels.py::test_build_is", "builds the kernels in subprocesses"),
    ("tests/functional/test_cpu_kernels.py::test_fallback", "subprocesses"),
    ("tests/functional/test_cpu_kernels.py::test_unwritable", "a subprocess"),
    ("tests/modules/clipping_adaptive/test_step_guards.py::test_full_batch", "4,000 training steps"),
]


def pytest_collection_modifyitems(config, items):  # noqa: D103
    import pytest

    for item in items:
        if any(item.nodeid.startswith(prefix) for prefix, _ in SLOW):
            item.add_marker(pytest.mark.slow)
