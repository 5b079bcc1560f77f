"""FSDP2 (``fully_shard``): every clipping module, per tensor and global, followed by Adam and LR,
gives the same parameters on 2 and 4 ranks (rtol 1e-5) as one unsharded process on the full batch.

The parameters are DTensors sharded on dim 0, with uneven and empty local shards (see
``dist_helpers.Net``). Global norms must be norms of all tensors across all shards, per-tensor norms
norms of whole tensors, and dims-based norms (rows, columns) taken over whole tensors too. Each
case also runs with the module after Adam (``-post``), where the module's output is the step,
and is checked to change the result (else the comparison would not test the module).
"""
from __future__ import annotations

import math

import pytest

from dist_fixtures import four_ranks, two_ranks  # noqa: F401 (fixtures)
from dist_helpers import EXTRA_CASES, FSDP2_CASES, FSDP4_CASES, FUSED_CASES, assert_close, poison_step, reference

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600), pytest.mark.filterwarnings(r"ignore:std\(\)")]

def _cases(cases):
    return list(cases)


@pytest.fixture(scope="module")
def baselines():
    return {order: reference(f"baseline-{order}") for order in ("pre", "post")}


def _check(run, case, baselines):
    result = run.load("fsdp.pt")[case]
    if "error" in result:
        pytest.fail(f"{case} on {run.world} ranks raised:\n{result['error']}", pytrace=False)
    want, _ = reference(case)
    atol = 1e-6 if "f32" in case else 1e-12  # sharded float32 sums round differently from one process's
    assert_close(result["params"], want, rtol=1e-5, atol=atol, what=f"{case} on {run.world} ranks")
    expect_skipped = 1 if poison_step(case) is not None else 0
    assert result["skipped"] == [expect_skipped] * run.world, f"{case}: skipped steps per rank {result['skipped']}"
    if case in FUSED_CASES:
        assert result["fused_steps"] > 0, f"{case}: the fused path never ran"
    elif case not in EXTRA_CASES:  # the module did something: a wrong norm would show
        baseline = baselines[case.rsplit("-", 1)[1]][0]
        diff = max((want[k] - baseline[k]).abs().max().item() for k in want)
        assert diff > 1e-6, f"{case}: the clipping module had no effect on this run; the test would be vacuous"


def _check_stats(run, case):
    result = run.load("fsdp.pt")[case]
    if "error" in result:
        pytest.fail(f"{case} on {run.world} ranks raised:\n{result['error']}", pytrace=False)
    stats, (_, want) = result["stats"], reference(case)
    assert "error" not in stats, f"{case}: opt.stats() on {run.world} ranks raised:\n{stats.get('error')}"
    assert stats.keys() == want.keys(), f"{case}: statistics {sorted(stats)} vs {sorted(want)}"
    for k, v in want.items():  # the last step's statistics: of whole tensors, global norms across shards
        assert math.isclose(stats[k], v, rel_tol=1e-5, abs_tol=1e-9) or (math.isnan(v) and math.isnan(stats[k])), f"{case}: {k} = {stats[k]}, one process: {v}"


def _stats_cases(cases):
    out = []
    for c in cases:
        out.append(pytest.param(c))
    return out


@pytest.mark.parametrize("case", _cases(FSDP2_CASES))
def test_fsdp_2_ranks(two_ranks, baselines, case):
    _check(two_ranks, case, baselines)


@pytest.mark.parametrize("case", _cases(FSDP4_CASES))
def test_fsdp_4_ranks(four_ranks, baselines, case):
    _check(four_ranks, case, baselines)


@pytest.mark.parametrize("case", _stats_cases(FSDP2_CASES))
def test_fsdp_stats_2_ranks(two_ranks, case):
    _check_stats(two_ranks, case)


@pytest.mark.parametrize("case", _stats_cases(FSDP4_CASES))
def test_fsdp_stats_4_ranks(four_ranks, case):
    _check_stats(four_ranks, case)
