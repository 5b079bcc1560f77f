"""The showdown and the gallery examples run at tiny settings and write what they say they write."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    """Runs ``examples/<name>`` in a fresh interpreter with torchzero importable from the repo; returns stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def table_rows(out: str) -> dict[str, list[str]]:
    """``{chain: cells}`` of the summary tables printed by the showdown (both tasks, in order)."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.match(r"^\| (\S+) \[", line)
        if m:
            rows.setdefault(m.group(1), []).append(line)
    return rows


def test_showdown_tiny(tmp_path: Path) -> None:
    out_dir = tmp_path / "sd"
    out = run_example("showdown.py", "--steps", "5", "--tasks", "rnn,lm", "--chains", "adam,clipnorm-global", "--out", str(out_dir))
    for task in ("rnn", "lm"):
        assert is_png(out_dir / f"showdown_{task}.png")
        with (out_dir / f"showdown_{task}.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert {r["chain"] for r in rows} == {"adam", "clipnorm-global"} and len(rows) == 2 * 5
        assert f"## {task}:" in out
    assert (out_dir / "summary.md").is_file()
    rows = table_rows(out)
    assert set(rows) == {"adam", "clipnorm-global"} and all(len(v) == 2 for v in rows.values()), out
    # the legend that defines the columns is printed too
    assert "caught:" in out and "steps to X" in out
    # the RNN starts in the exploding regime: global clipping at 1 catches every one of the 5 steps
    assert "5 (5+0) 100%" in rows["clipnorm-global"][0]
    assert "0 (0+0) 0%" in rows["adam"][0]


def test_showdown_every_chain_and_determinism(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import showdown
    finally:
        sys.path.remove(str(EXAMPLES))
    chains = showdown.available_chains()
    outs = []
    for name in ("a", "b"):
        out = run_example("showdown.py", "--steps", "4", "--tasks", "rnn", "--chains", ",".join(chains), "--out", str(tmp_path / name))
        assert set(table_rows(out)) == set(chains), out
        outs.append((tmp_path / name / "showdown_rnn.csv").read_text())
    assert outs[0] == outs[1], "two runs with the same --seed differ"
    other = run_example("showdown.py", "--steps", "4", "--tasks", "rnn", "--chains", "adam", "--seed", "1", "--out", str(tmp_path / "c"))
    assert "adam" in other
    assert (tmp_path / "c" / "showdown_rnn.csv").read_text().splitlines()[1] != outs[0].splitlines()[1]


def test_showdown_rejects_unknown_chain(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "showdown.py"), "--chains", "adam,nope", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "nope" in proc.stderr


def test_custom_module(tmp_path: Path) -> None:
    out = run_example("custom_module.py", "--steps", "20", "--out", str(tmp_path))
    assert is_png(tmp_path / "custom_module.png")
    # the noise has the standard deviation of the formula, within 3% on 100,000 samples
    pairs = re.findall(r"std of the output ([\d.]+)\s+sigma_t by the formula ([\d.]+)", out)
    assert len(pairs) == 4 and all(abs(float(a) / float(b) - 1) < 0.03 for a, b in pairs), out
    assert "ValueError" in out and "mean loss of the last" in out


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_lr_schedulers_and_amp(tmp_path: Path, dtype: str) -> None:
    out = run_example("lr_schedulers_and_amp.py", "--steps", "12", "--dtype", dtype, "--device", "cpu", "--out", str(tmp_path))
    assert is_png(tmp_path / "lr_schedulers_and_amp.png")
    assert f"GradScaler {'on' if dtype == 'float16' else 'off'}" in out
    lines = re.findall(r"^\s+\d+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", out, flags=re.MULTILINE)
    assert len(lines) >= 2, out
    lrs = [float(row[0]) for row in lines]
    assert lrs[0] < max(lrs), f"OneCycleLR should warm the lr up:\n{out}"
    # the clip sees the unscaled gradient: a norm of order 1, not of order 65536
    norms = [float(row[2]) for row in lines if row[2] != "nan"]
    assert norms and max(norms) < 100, out
    assert "test accuracy" in out


def test_clip_stats(tmp_path: Path) -> None:
    out = run_example("clip_stats.py", "--steps", "60", "--spike-every", "30", "--out", str(tmp_path))
    assert is_png(tmp_path / "clip_stats.png")
    with (tmp_path / "clip_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    stats = {r["stat"] for r in rows}
    assert {"loss", "ZClip/norm", "ZClip/factor"} <= stats, stats
    assert {int(r["step"]) for r in rows} == set(range(1, 61))
    # ZClip (warm-up 25 steps) catches the bad batches injected at steps 30 and 60
    assert "acted on 2 of them [30, 60]" in out, out


def test_classical_paths(tmp_path: Path) -> None:
    out = run_example("classical_paths.py", "--steps", "60", "--out", str(tmp_path))
    assert is_png(tmp_path / "classical_paths.png")
    rows = re.findall(r"^\s+(\w+)\s+(.+?)\s+steps\s+(\d+)\s+evals\s+(\d+)\s+f\s+(\S+)$", out, flags=re.MULTILINE)
    assert len(rows) == 12, out
    # the methods with curvature reach Rosenbrock's minimum within 60 steps; gradient descent doesn't
    rosen = {method: float(f) for fn, method, _, _, f in rows if fn == "Rosenbrock"}
    assert rosen["L-BFGS + StrongWolfe"] < 1e-12 and rosen["BFGS + StrongWolfe"] < 1e-12
    assert rosen["GD + Backtracking"] > 1e-3
    losses = dict(re.findall(r"^\s+(.+?)\s+final MSE (\S+)$", out, flags=re.MULTILINE))
    assert float(losses["L-BFGS + StrongWolfe"]) < float(losses["Adam (lr=1e-2)"]), out


def test_curve_fit(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    out = run_example("curve_fit.py", "--out", str(tmp_path))
    assert is_png(tmp_path / "curve_fit.png")
    # both fits reach the same sum of squares on each model
    for ours, theirs in zip(re.findall(r"torchzero lm .*SSE ([0-9.]+)", out), re.findall(r"scipy curve_fit +\[.*SSE ([0-9.]+)", out)):
        assert abs(float(ours) - float(theirs)) <= 1e-5 * float(theirs)
    assert len(re.findall(r"torchzero lm", out)) == 2


def test_mezo(tmp_path: Path) -> None:
    out = run_example("mezo.py", "--steps", "150", "--out", str(tmp_path), "--no-memory")
    assert is_png(tmp_path / "mezo.png")
    losses = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^   (.+?) +([0-9.e+-]+)$", out, re.M)}
    assert set(losses) == {"MeZO + Adam", "MeZO + LR (ZO-SGD)", "Adam, backprop"}
    assert losses["Adam, backprop"] < losses["MeZO + Adam"]  # per forward pass backprop is ahead


def test_modern_optimizers(tmp_path: Path) -> None:
    out = run_example("modern_optimizers.py", "--steps", "25", "--out", str(tmp_path))
    assert is_png(tmp_path / "modern_optimizers.png")
    losses = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^   (.+?) +([0-9.]+)$", out, re.M)}
    assert set(losses) == {"AdamW", "Muon + AdamW", "SOAP", "Schedule-Free AdamW"}
    assert all(0 < v < 4.9 for v in losses.values())  # below the uniform 128-way loss (ln 128 = 4.85) after 25 steps
