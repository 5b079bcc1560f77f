"""The showdown page's conclusions hold: on the documented runs (``docs/examples/
showdown_results.json``, which ``docs/gen_gallery.py`` writes together with the page) and on
fresh runs of the example, over several seeds.

Each conclusion is a statement over seeds (medians, or every seed), never a single-seed number:
in the exploding regime a difference in the last bit of the weights changes the next gradient
completely, so one run's numbers flip with the kernels' rounding, but these don't.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Any


ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "examples" / "showdown.md"
DOCUMENTED = ROOT / "docs" / "examples" / "showdown_results.json"


def _med(ss: list[dict[str, Any]], key: str) -> float:
    return median(s[key] for s in ss)


def check_conclusions(tasks: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """The conclusions the page states ("Reading the result"), as assertions over seeds."""
    if "rnn" in tasks:
        rnn = tasks["rnn"]
        # plain Adam's median gradient norm stays above 10^3; a clip that keeps acting (ZClip,
        # ClipNorm per tensor) ends more than a thousand times lower
        assert _med(rnn["adam"], "end_norm") > 1e3
        for chain in ("zclip", "clipnorm-tensor"):
            if chain in rnn:
                assert _med(rnn[chain], "end_norm") * 1e3 < _med(rnn["adam"], "end_norm"), chain
        # the modules whose threshold follows the norm leave it high, as plain Adam does
        for chain in ("clipnorm-growth", "skiponspike", "autoclip", "clipnorm-ema"):
            if chain in rnn:
                assert _med(rnn[chain], "end_norm") > 1e3, chain
    if "lm" in tasks:
        lm = tasks["lm"]
        finals = [_med(ss, "final") for ss in lm.values()]
        # the well-behaved language model: clipping hardly matters, and a global clip at 1 rarely acts
        assert max(finals) - min(finals) < 0.15, finals
        assert median(100 * s["caught"] / s["steps"] for s in lm["clipnorm-global"]) < 10
    for chains in tasks.values():  # no run is aborted
        assert not [(c, s["seed"]) for c, ss in chains.items() for s in ss if s["stopped"]]


def test_the_page_is_generated_and_stamped() -> None:
    page = PAGE.read_text(encoding="utf-8")
    block = page[page.index("<!-- gallery: begin -->") : page.index("<!-- gallery: end -->")]
    results = json.loads(DOCUMENTED.read_text())
    meta = results["meta"]
    assert f"at commit `{meta['commit']}`" in block and meta["date"] in block and meta["kernels"] in block
    assert len(meta["seeds"]) >= 3, "conclusions are stated over several seeds"
    for task in results["tasks"]:
        assert f"img/showdown_{task}.png" in block and (ROOT / "docs" / "examples" / "img" / f"showdown_{task}.png").exists()


def test_the_documented_runs_support_the_conclusions() -> None:
    check_conclusions(json.loads(DOCUMENTED.read_text())["tasks"])


def test_fresh_runs_support_the_conclusions(tmp_path: Path) -> None:
    tasks: dict[str, Any] = {}
    for task, chains, seeds in (("rnn", "adam,zclip,clipnorm-tensor,skiponspike", "0,1,2"), ("lm", "adam,clipnorm-global", "0,1")):
        out = tmp_path / task
        proc = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "showdown.py"), "--tasks", task, "--chains", chains, "--seeds", seeds,
             "--steps", "300", "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        tasks.update(json.loads((out / "results.json").read_text())["tasks"])
    check_conclusions(tasks)
