"""Settings given as NumPy scalars, tensors, fractions or decimals behave as the same float;
sizes are bounded; generators are read once; a module instance is used in one place only."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

import torchzero as tz
from torchzero.utils.validation import MAX_BUFFER, MAX_ITERATIONS, as_setting

HALF = {
    "float": 0.5,
    "np.float32": np.float32(0.5),
    "np.float64": np.float64(0.5),
    "np.0d-array": np.array(0.5),
    "tensor-0d": torch.tensor(0.5),
    "tensor-(1,)": torch.tensor([0.5]),
    "tensor-(1,1)-float64": torch.tensor([[0.5]], dtype=torch.float64),
    "Fraction": Fraction(1, 2),
    "Decimal": Decimal("0.5"),
}

MODULES = {
    "ClipNorm": lambda x: [tz.m.ClipNorm(x)],
    "ClipNorm-global": lambda x: [tz.m.ClipNorm(x, dim="global")],
    "ClipValue": lambda x: [tz.m.ClipValue(x)],
    "Normalize": lambda x: [tz.m.Normalize(x)],
    "AGC-eps": lambda x: [tz.m.AGC(0.01, eps=x)],
    "Adam-betas": lambda x: [tz.m.Adam(beta1=x, beta2=x)],
    "Adam-betas-fused": lambda x: [tz.m.Adam(beta1=x, beta2=x), tz.m.LR(0.1)],
    "WeightDecay": lambda x: [tz.m.WeightDecay(x)],
    "LR": lambda x: [tz.m.LR(x)],
}


def _run(modules: list) -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(5))]
    opt = tz.Modular(params, *modules)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn_like(p) * 3
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("kind", list(HALF))
@pytest.mark.parametrize("module", list(MODULES))
def test_number_kinds_step_like_the_float(module: str, kind: str) -> None:
    expected = _run(MODULES[module](0.5))
    got = _run(MODULES[module](HALF[kind]))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kind", [k for k in HALF if not k.startswith("tensor")])
def test_numbers_are_stored_as_python_floats(kind: str) -> None:
    assert type(tz.m.ClipNorm(HALF[kind]).defaults["max_norm"]) is float


def test_tensor_lr_stays_the_same_tensor() -> None:
    lr = torch.tensor(0.1)
    w = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([w], tz.m.LR(lr))
    assert opt.param_groups[0]["lr"] is lr
    lr.fill_(0.5)  # as a scheduler does with a tensor lr
    w.grad = torch.ones(2)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2,), 0.5))


def test_param_group_values_are_normalized_where_stored() -> None:
    w, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([{"params": [w]}, {"params": [b], "max_norm": np.float32(0.25), "betas": (np.float64(0.5), Fraction(9, 10))}],
                     tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(0.1))
    g = opt.param_groups[1]
    assert type(g["max_norm"]) is float and g["max_norm"] == 0.25
    assert g["betas"] == (0.5, 0.9) and all(type(x) is float for x in g["betas"])
    sd = opt.state_dict()
    sd["param_groups"][1]["max_norm"] = Decimal("0.125")
    opt.load_state_dict(sd)
    assert type(opt.param_groups[1]["max_norm"]) is float and opt.param_groups[1]["max_norm"] == 0.125


def test_mixed_float_and_tensor_betas_are_refused_like_torch() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError) as ours:
        tz.Modular([{"params": [w], "betas": (0.9, torch.tensor(0.999))}], tz.m.Adam(), tz.m.LR(0.1))
    with pytest.raises(type(ours.value)):
        torch.optim.Adam([w], betas=(0.9, torch.tensor(0.999)))


def test_tensor_betas_step_like_torch() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4))
    ref_w = torch.nn.Parameter(w.detach().clone())
    betas = (torch.tensor(0.8), torch.tensor(0.99))
    opt = tz.Modular([{"params": [w], "betas": betas}], tz.m.Adam(), tz.m.LR(0.1), fused=False)
    ref = torch.optim.Adam([ref_w], lr=0.1, betas=betas, foreach=False)
    for _ in range(5):
        w.grad = ref_w.grad = torch.randn(4)
        opt.step()
        ref.step()
    torch.testing.assert_close(w.detach(), ref_w.detach())


def test_a_generator_dim_is_read_once() -> None:
    expected = _run([tz.m.ClipNorm(0.5, dim=(0,))])
    m = tz.m.ClipNorm(0.5, dim=(d for d in [0]))
    assert m.defaults["dim"] == (0,)
    for a, b in zip(_run([m]), expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: tz.m.AutoClip(history=10**12), "history"),
        (lambda: tz.m.AutoClip(history=MAX_BUFFER + 1), "history"),
        (lambda: tz.m.SkipOnSpike(window=10**12), "window"),
        (lambda: tz.m.Orthogonalize(ns_steps=MAX_ITERATIONS + 1), "ns_steps"),
        (lambda: tz.m.Multistep(tz.m.Adam(), 10**9), "steps"),
    ],
    ids=["AutoClip-history-1e12", "AutoClip-history-bound+1", "SkipOnSpike-window-1e12", "Orthogonalize-ns_steps", "Multistep-steps"],
)
def test_huge_sizes_are_refused_at_construction(make, name: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=rf"{name} must be an int .*<= "):
        make()


def test_sizes_at_the_bound_are_accepted() -> None:
    tz.m.AutoClip(history=MAX_BUFFER)
    tz.m.SkipOnSpike(window=MAX_BUFFER)


@pytest.mark.parametrize(
    "chain",
    [
        lambda a: [a, a, tz.m.LR(0.1)],
        lambda a: [tz.m.Adam(inner=a), a, tz.m.LR(0.1)],
        lambda a: [tz.m.Chain(a, tz.m.LR(0.1)), a],
    ],
    ids=["twice-top-level", "inner-and-top-level", "inside-a-chain"],
)
def test_the_same_module_instance_twice_is_refused(chain) -> None:  # noqa: ANN001
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="same EMA instance"):
        tz.Modular([w], *chain(tz.m.EMA(0.9)))


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.int64(3), 3),
        (np.bool_(True), True),
        (torch.tensor(7), 7),
        ((np.float32(0.5), Fraction(1, 4)), (0.5, 0.25)),
        ([np.float64(1.5)], [1.5]),
        (torch.zeros(2), "same"),
        ("global", "global"),
        (None, None),
    ],
    ids=["np.int64", "np.bool_", "int-tensor", "tuple", "list", "2-element-tensor", "str", "None"],
)
def test_as_setting(value, expected) -> None:  # noqa: ANN001
    got = as_setting(value)
    if expected == "same":
        assert got is value
    else:
        assert got == expected and type(got) is type(expected)
