"""Runs PyTorch's own generic optimizer tests (``TestOptimRenewed`` in ``test/test_optim.py``)
against torchzero: torch's ``OptimizerInfo`` entries for Adam, AdamW, SGD, RMSprop, Adagrad,
Rprop, NAdam, RAdam, Adamax and Adadelta are pointed at ``tz.Modular`` chains built by
``adapter.py`` from torch's own arguments.

PyTorch's file is not part of this repository: it is read from the path given or, by default,
from ``peer/torch/test_optim.py`` in a folder named ``shared`` next to the repository's own
folder. Usage::

    python tests/conformance/run_torch_suite.py [path/to/test_optim.py] [-- extra pytest args]

Arguments no chain can express (``capturable``, ``differentiable``, ``foreach=False``, fused
SGD/Adagrad) skip the test that uses them. Prints the passed/failed/skipped counts and, for
each failure, its test and the first line of its error. Exits 0 when the file is absent.
Needs ``expecttest`` (in the dev extra), which torch's test utilities import.
"""
from __future__ import annotations

import sys
import types
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAMES = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Rprop", "NAdam", "RAdam", "Adamax", "Adadelta")


def _stub_torch_test_modules() -> None:
    """``test_optim.py`` imports three sibling test files of torch's repository (the scheduler,
    differentiable-optimizer and SWA tests), which are not about these optimizers: give them
    empty stand-ins."""
    from torch.testing._internal.common_utils import TestCase

    class _Empty(TestCase):
        pass

    pkg = types.ModuleType("optim")
    pkg.__path__ = []  # a package
    sys.modules["optim"] = pkg
    for mod, cls in (("test_lrscheduler", "TestLRScheduler"), ("test_optim", "TestDifferentiableOptimizer"), ("test_swa_utils", "TestSWAUtils")):
        m = types.ModuleType(f"optim.{mod}")
        setattr(m, cls, type(cls, (_Empty,), {}))
        sys.modules[f"optim.{mod}"] = m


def _point_optim_db_at_torchzero() -> None:
    from torch.testing._internal import common_optimizers

    sys.path.insert(0, str(HERE))
    from adapter import Unsupported, adapted

    for info in common_optimizers.optim_db:
        if info.optim_cls.__name__ not in NAMES:
            continue
        base = adapted(info.optim_cls)

        class Skipping(base):  # type: ignore[valid-type, misc]
            def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
                try:
                    super().__init__(*args, **kwargs)
                except Unsupported as e:
                    raise unittest.SkipTest(f"not expressible in torchzero: {e}") from None

        Skipping.__name__ = Skipping.__qualname__ = info.optim_cls.__name__
        info.optim_cls = Skipping


class _Tally:
    """A pytest plugin counting outcomes and keeping each failure's first error line."""

    def __init__(self) -> None:
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.failures: list[tuple[str, str]] = []
        self.skips: dict[str, int] = {}

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                self.counts["passed"] += 1
            elif report.skipped:
                self.counts["skipped"] += 1
                reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
                reason = reason.removeprefix("Skipped: ")
                self.skips[reason[:120]] = self.skips.get(reason[:120], 0) + 1
            else:
                self.counts["failed"] += 1
                text = str(report.longrepr)
                lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
                self.failures.append((report.nodeid.split("::")[-1], (lines[0][2:].strip() if lines else text.splitlines()[-1])[:200]))


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = argv[: argv.index("--")] if "--" in argv else argv
    path = Path(args[0]) if args else ROOT.parent / "shared" / "peer" / "torch" / "test_optim.py"
    if not path.exists():
        print(f"PyTorch's test_optim.py not found at {path}; nothing to run")
        return 0
    import pytest

    _stub_torch_test_modules()
    _point_optim_db_at_torchzero()
    selected = " or ".join(f"_{n}_" for n in NAMES)
    tally = _Tally()
    pytest.main(
        [str(path), "-q", "-p", "no:cacheprovider", "-c", str(HERE / "torch_suite.ini"), "--rootdir", str(path.parent),
         "-k", f"TestOptimRenewedCPU and ({selected})", "--no-header", "-o", "addopts=", *extra],
        plugins=[tally],
    )
    c = tally.counts
    print(f"\ntorch's TestOptimRenewed against tz.Modular: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
    for test, line in tally.failures:
        print(f"  FAILED {test}: {line}")
    print("skipped, by reason:")
    for reason, n in sorted(tally.skips.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4d}  {reason}")
    return 0 if not c["failed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
