"""examples/ddp_fsdp.py under torchrun (2 ranks, gloo, 127.0.0.1): it trains, rank 0 prints the
loss, and DDP and FSDP2 print the same losses (the same optimizer on the same gradients)."""
from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from dist_helpers import ROOT

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: float = 240) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(ROOT / "examples" / "ddp_fsdp.py"), *args]
    # a session of its own: on a timeout the launcher and its workers are killed together
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun timed out after {timeout} s\nstdout:\n{out}\nstderr:\n{err[-4000:]}")
    assert proc.returncode == 0, f"torchrun exited with {proc.returncode}\nstdout:\n{out}\nstderr:\n{err[-4000:]}"
    return out


def losses(out: str) -> list[float]:
    found = [float(x) for x in re.findall(r"^step\s+\d+\s+loss\s+(\S+)$", out, flags=re.MULTILINE)]
    assert len(found) >= 2, f"expected several 'step N  loss X' lines from rank 0 only, got:\n{out}"
    assert all(math.isfinite(v) for v in found), out
    return found


@pytest.fixture(scope="module")
def runs() -> dict[str, list[float]]:
    return {mode: losses(torchrun("--mode", mode, "--steps", "30", "--print-every", "5")) for mode in ("ddp", "fsdp")}


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_example_trains(runs, mode):
    got = runs[mode]
    assert len(got) == 7, f"rank 0 alone prints steps 1, 5, ..., 30: {got}"
    assert got[-1] < 0.6 * got[0], f"the loss did not fall: {got}"


def test_ddp_and_fsdp_print_the_same_losses(runs):
    for a, b in zip(runs["ddp"], runs["fsdp"]):
        assert math.isclose(a, b, rel_tol=1e-4), f"DDP {runs['ddp']} vs FSDP2 {runs['fsdp']}"
