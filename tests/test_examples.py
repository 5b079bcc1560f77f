"""The scripts in examples/ run and do what they say."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    """Runs ``examples/<name>`` in a fresh interpreter (torchzero importable from the repo) and returns stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_quickstart_loss_falls() -> None:
    out = run_example("quickstart.py", "--steps", "30")
    losses = [float(x) for x in re.findall(r"^step\s+\d+\s+loss\s+(\S+)$", out, flags=re.MULTILINE)]
    assert len(losses) >= 2, f"expected several 'step N  loss X' lines, got:\n{out}"
    assert all(l == l for l in losses), f"NaN loss:\n{out}"  # noqa: E741
    assert losses[-1] < losses[0], f"loss did not fall:\n{out}"


def test_quickstart_rejects_bad_steps() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--steps", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "--steps" in proc.stderr
