"""The functional layer (norms, clipping and centring kernels) on DTensors sharded on dim 0 over
2 and 4 ranks (uneven shards, empty shards, a zero-size tensor) equals the same functions on the
whole tensors: every ``ord`` (p-norms, max, min, nonzero count, negative p, mad, std, var, sum),
global, per tensor and over dims (including the sharded dim), and a plain tensor mixed into a
list of DTensors counts once. Whole-tensor and global norms come back as plain tensors."""
from __future__ import annotations

import pytest
import torch

from dist_fixtures import four_ranks, two_ranks  # noqa: F401 (fixtures)
from dist_helpers import func_tensors, functional_results

# the unsharded std/var of one element warn (and are NaN, as the sharded ones)
pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600), pytest.mark.filterwarnings(r"ignore:(std|var)\(\)")]


@pytest.fixture(scope="module")
def expected():
    return functional_results(func_tensors(), func_tensors()[0] * 2)


@pytest.mark.parametrize("world", [2, 4])
def test_functional_on_shards_equals_whole_tensors(request, expected, world):
    run = request.getfixturevalue("two_ranks" if world == 2 else "four_ranks")
    got = run.load("functional.pt")
    bad = []
    for key, want in expected.items():
        have = got["results"][key]
        for h, w in zip(have, want) if isinstance(want, list) else [(have, want)]:
            if not torch.allclose(h.to(w.dtype), w, rtol=1e-6, atol=1e-12, equal_nan=True) or h.shape != w.shape:
                bad.append(f"{key}: {h} vs {w}")
    assert not bad, f"{len(bad)} of {len(expected)} results differ on {world} ranks:\n" + "\n".join(bad[:20])
    for key, kind in got["kinds"].items():
        if key.startswith(("global", "tensor")):
            assert kind == "Tensor", f"{key} is a {kind}, not a plain tensor"
