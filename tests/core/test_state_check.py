"""Tensors that don't fit their parameters never reach a kernel (torchzero/core/state_check.py).

Every case of ``state_check_cases.py`` once crashed the interpreter, hung, or silently made
NaN. They run in a subprocess, once with torchzero's CPU kernels and once with torch's fused
kernels (``TORCHZERO_CPU_KERNELS=0``), so a regression fails these tests instead of killing
the suite.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchzero.core.state_check import check_grads, check_states, mismatch

from state_check_cases import CASES  # beside this file (pytest puts its folder on sys.path)

_SCRIPT = Path(__file__).with_name("state_check_cases.py")
_KERNELS = {"own-kernels": "1", "torch-kernels": "0"}


@pytest.fixture(scope="module", params=list(_KERNELS))
def outcomes(request) -> dict[str, str]:  # noqa: ANN001
    """``{case: "ok" or "<ExceptionType>: <message>"}`` from one subprocess running every case."""
    env = {**os.environ, "TORCHZERO_CPU_KERNELS": _KERNELS[request.param]}
    proc = subprocess.run(
        [sys.executable, str(_SCRIPT)], capture_output=True, text=True, timeout=600, env=env, cwd=_SCRIPT.parents[2]
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"CASE (\w+): (.*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    if len(out) < len(CASES):
        crashed = next(name for name in CASES if name not in out)
        out[crashed] = f"CRASHED (exit status {proc.returncode}): {proc.stderr[-2000:]}"
    out["__stderr__"] = proc.stderr
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_case_fails_cleanly_or_steps(outcomes: dict[str, str], case: str) -> None:
    _, expect = CASES[case]
    got = outcomes.get(case, "not run: an earlier case crashed the process")
    if expect.exc is None:
        assert got == "ok", f"{case}: {got}\n{outcomes['__stderr__'][-3000:]}"
    else:
        assert got.startswith(f"{expect.exc.__name__}: "), f"{case}: expected {expect.exc.__name__}, got {got}"
        assert re.search(expect.match, got), f"{case}: {got!r} does not match {expect.match!r}"


# ------------------------------------------------------------------------ the checks themselves
@pytest.mark.parametrize(
    "t, fits",
    [
        (torch.zeros(4, 3), True),
        (torch.zeros(3, 4).t(), True),
        (torch.zeros(12), False),
        (torch.zeros(4, 3, dtype=torch.float64), False),
        (torch.zeros(4, 3, device="meta"), False),
        (torch.zeros(3).expand(4, 3), False),
    ],
    ids=["same", "transposed", "same-numel", "dtype", "device", "expanded"],
)
def test_mismatch(t: torch.Tensor, fits: bool) -> None:
    assert (mismatch(t, torch.zeros(4, 3)) is None) == fits


def test_check_grads_names_the_parameter() -> None:
    p = torch.zeros(4, 3)
    with pytest.raises(RuntimeError, match=r"gradient of P7 is \(4,\).*zero_grad"):
        check_grads([p], [torch.zeros(4)], lambda _: "P7")
    check_grads([p], [torch.ones(4, 3)])


def test_check_states_allows_missing_keys_only() -> None:
    p = torch.zeros(2)
    check_states(object(), "0", [p], [{}], ["exp_avg"])
    with pytest.raises(RuntimeError, match=r"'exp_avg'.*NoneType, not a tensor"):
        check_states(object(), "0", [p], [{"exp_avg": None}], ["exp_avg"])
