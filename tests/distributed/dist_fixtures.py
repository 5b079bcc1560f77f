"""The launches of several processes, as session fixtures shared by the distributed tests.

Starting processes that import torch is the slow part of these tests, so each rank count is
launched once per test session and runs every task it serves (``dist_worker.py``): with 2 ranks
the functional layer, the FSDP2 cases, the DDP cases and the DCP checkpoint; with 4 ranks the
functional layer and a subset of the FSDP2 cases. The test modules import the fixtures from here
(there is no ``conftest.py`` in this folder: tests elsewhere import the root ``conftest`` by name),
and the launches are memoized, so each runs once however many modules use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from dist_helpers import CLOSURE_CASES, DCP_SPLIT, DCP_STOP, DDP_CASES, FSDP2_CASES, FSDP4_CASES, launch

__all__ = ["Run", "two_ranks", "four_ranks"]


@dataclass
class Run:
    """What one launch left in ``out`` (``error``: its logs if a rank failed, else None)."""

    world: int
    out: Path
    error: str | None

    def load(self, name: str) -> Any:
        path = self.out / name
        if not path.exists():
            pytest.fail(f"no {name}: the launch on {self.world} ranks failed\n{self.error}", pytrace=False)
        return torch.load(path, weights_only=True)


_RUNS: dict[int, Run] = {}


def _run(world: int, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if world not in _RUNS:
        out = tmp_path_factory.mktemp(f"ranks{world}")
        if world == 2:
            tasks = [
                "functional", "fsdp:" + ",".join(FSDP2_CASES), "ddp:" + ",".join(DDP_CASES) + ":float32", f"dcp:{DCP_SPLIT}:{DCP_STOP}",
                "ddp_closure:" + ",".join(CLOSURE_CASES),
            ]
        else:
            tasks = ["functional", "fsdp:" + ",".join(FSDP4_CASES)]
        _RUNS[world] = Run(world, out, launch(world, out, *tasks, timeout=300))
    return _RUNS[world]


@pytest.fixture(scope="session")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(2, tmp_path_factory)


@pytest.fixture(scope="session")
def four_ranks(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(4, tmp_path_factory)
