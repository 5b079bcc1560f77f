"""What Modular knows about a module comes from its declared ``CAPABILITIES`` only."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import torchzero as tz
from torchzero.core import Capabilities

CORE = Path(tz.__file__).parent / "core"


class _Guard(tz.Module):
    CAPABILITIES = Capabilities(guard=True)

    def step(self, var):  # noqa: ANN001, ANN201
        return var


def test_a_declared_guard_must_come_first() -> None:
    w = torch.nn.Parameter(torch.ones(2))
    tz.Modular([w], _Guard(), tz.m.LR(0.1))
    with pytest.raises(ValueError, match="_Guard must come before LR"):
        tz.Modular([w], tz.m.LR(0.1), _Guard())


def test_an_undeclared_attribute_is_not_a_contract() -> None:
    class NotAGuard(tz.Module):
        GUARD = True  # an attribute of that name declares nothing

        def step(self, var):  # noqa: ANN001, ANN201
            return var

    w = torch.nn.Parameter(torch.ones(2))
    tz.Modular([w], tz.m.LR(0.1), NotAGuard())  # not required to come first


def test_fused_role_is_checked() -> None:
    with pytest.raises(ValueError, match="fused_role must be one of"):
        Capabilities(fused_role="adamw")


@pytest.mark.parametrize(
    "module, expected",
    [
        (tz.m.Adam(), Capabilities(fused_role="adam", fused_options=tz.m.Adam.CAPABILITIES.fused_options)),
        (tz.m.SkipOnSpike(), Capabilities(guard=True)),
        (tz.m.ClipValue(1.0), Capabilities()),
    ],
    ids=["Adam", "SkipOnSpike", "ClipValue"],
)
def test_declared_capabilities(module: tz.Module, expected: Capabilities) -> None:
    assert module.CAPABILITIES == expected


@pytest.mark.parametrize("name", ["modular.py", "fused.py"])
def test_the_core_probes_no_attribute_by_name(name: str) -> None:
    source = (CORE / name).read_text(encoding="utf-8")
    assert not re.findall(r"getattr\(|hasattr\(", source)
