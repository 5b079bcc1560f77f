"""The fused path can't drift from the modules it replaces.

Over the option space of the fused chain ``[ClipNorm/Normalize(dim="global")] Adam
[WeightDecay] LR`` (Adam's options, the clip modules and their ``ord``, weight decay, ``lr`` as
a float or a tensor, dtypes, one or two param groups with their own settings, parameters that
miss gradients, and state loaded with other strides), ``Modular(..., fused=None)`` gives the
same parameters, state and statistics as ``Modular(..., fused=False)``. A sample of the full
product runs (the same sample every time); each option value appears in it many times.

And a module option the fused form does not know makes the fast path decline.
"""
from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import torch

import torchzero as tz

OPTIONS: dict[str, list[Any]] = {
    "betas": [(0.9, 0.999), (0.5, 0.9)],
    "eps": [1e-8, 1e-3],
    "amsgrad": [False, True],
    "alpha": [1.0, 0.5],
    "clip": [None, ("ClipNorm", 1.0, 2), ("ClipNorm", 0.3, 2), ("Normalize", 1.0, 2), ("ClipNorm", 1.0, 1), ("ClipNorm", 1.0, float("inf")), ("ClipNorm", 1.0, "linf")],
    "weight_decay": [None, 0.01],
    "lr": ["float", "tensor"],
    "dtype": [torch.float32, torch.float64],
    "groups": ["one", "two-with-settings"],
    "missing_grads": [False, True],
    "strided_state": [False, True],
}
_ALL = list(itertools.product(*OPTIONS.values()))
SAMPLE = [dict(zip(OPTIONS, combo)) for combo in random.Random(0).sample(_ALL, 160)]


def _id(c: dict[str, Any]) -> str:
    clip = "noclip" if c["clip"] is None else f"{c['clip'][0]}{c['clip'][1]}-ord{c['clip'][2]}"
    return "-".join([
        f"b{c['betas'][0]}", f"eps{c['eps']:g}", "ams" if c["amsgrad"] else "noams", f"a{c['alpha']}", clip,
        "wd" if c["weight_decay"] else "nowd", f"lr-{c['lr']}", str(c["dtype"]).removeprefix("torch."), c["groups"],
        "missing" if c["missing_grads"] else "all", "strided" if c["strided_state"] else "dense",
    ])


def _chain(c: dict[str, Any]) -> list:
    mods: list = []
    if c["clip"] is not None:
        cls, value, ord_ = c["clip"]
        mods.append(getattr(tz.m, cls)(value, ord=ord_, dim="global"))
    mods.append(tz.m.Adam(*c["betas"], eps=c["eps"], amsgrad=c["amsgrad"], alpha=c["alpha"]))
    if c["weight_decay"]:
        mods.append(tz.m.WeightDecay(c["weight_decay"]))
    mods.append(tz.m.LR(torch.tensor(1e-2) if c["lr"] == "tensor" else 1e-2))
    return mods


def _params(c: dict[str, Any]) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=c["dtype"])) for s in [(6, 5), (5,), (3, 4, 2), ()]]


def _run(c: dict[str, Any], fused: bool | None) -> tuple[list[torch.Tensor], dict[str, Any], dict[str, torch.Tensor], int]:
    params = _params(c)
    if c["groups"] == "one":
        groups: Any = params
    else:
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6}]
    opt = tz.Modular(groups, *_chain(c), fused=fused)
    g = torch.Generator().manual_seed(1)
    fused_steps = 0
    plan = opt._fused_plan
    if plan is not None:  # count the steps the fused path really took
        original = plan.run

        def counting(*args: Any, **kwargs: Any) -> None:
            nonlocal fused_steps
            fused_steps += 1
            original(*args, **kwargs)

        plan.run = counting  # type: ignore[method-assign]
    for step in range(4):
        for i, p in enumerate(params):
            p.grad = None if (c["missing_grads"] and i == 1 and step % 2 == 1) else torch.randn(p.shape, generator=g, dtype=p.dtype) * 3
        if step == 2 and c["strided_state"]:  # a state loaded with other strides (e.g. from a transposed save)
            key = next(k for k in opt.state[params[0]] if k.endswith(".exp_avg"))
            t = opt.state[params[0]][key]
            opt.state[params[0]][key] = t.t().contiguous().t()
        opt.step()
    state = {k: v.clone() if isinstance(v, torch.Tensor) else v for p in params for k, v in opt.state[p].items()}
    return [p.detach().clone() for p in params], state, opt.stats(), fused_steps


@pytest.mark.parametrize("combo", SAMPLE, ids=[_id(c) for c in SAMPLE])
def test_fused_matches_general(combo: dict[str, Any]) -> None:
    p_f, s_f, st_f, fused_steps = _run(combo, None)
    p_g, s_g, st_g, _ = _run(combo, False)
    assert fused_steps >= 2, "the fused path did not run: the comparison would be vacuous"
    tol = dict(rtol=1e-5, atol=1e-6) if combo["dtype"] == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(p_f, p_g):
        torch.testing.assert_close(a, b, **tol)
    assert s_f.keys() == s_g.keys()
    for k in s_f:
        torch.testing.assert_close(torch.as_tensor(s_f[k]), torch.as_tensor(s_g[k]), **tol, msg=k)
    assert st_f.keys() == st_g.keys()
    for k in st_f:
        torch.testing.assert_close(st_f[k].double(), st_g[k].double(), rtol=1e-5, atol=1e-6, msg=k)


def test_the_sample_covers_every_option_value() -> None:
    for name, values in OPTIONS.items():
        for v in values:
            assert sum(c[name] == v for c in SAMPLE) >= 10, (name, v)


def _fused_steps(*modules: Any) -> bool:
    w = torch.nn.Parameter(torch.ones(4))
    opt = tz.Modular([w], *modules)
    w.grad = torch.ones(4)
    plan = opt._fused_plan
    return plan is not None and plan.step([(opt.param_groups[0], [w], [w.grad])])


def test_an_option_the_fused_form_does_not_know_declines() -> None:
    class AdamWithNewOption(tz.m.Adam):
        def __init__(self, new_option: float = 0.5, **kwargs: Any):
            super().__init__(**kwargs)
            self.defaults["new_option"] = new_option

    assert _fused_steps(tz.m.Adam(), tz.m.LR(0.1))
    assert not _fused_steps(AdamWithNewOption(), tz.m.LR(0.1))


@pytest.mark.parametrize("module", ["Adam", "WeightDecay", "LR", "ClipNorm", "Normalize"])
def test_every_option_of_a_fused_module_is_known_to_the_fused_form(module: str) -> None:
    """A new option added to one of these modules must be handled by its ``fused_spec`` (and
    listed in its ``CAPABILITIES.fused_options``), or the fast path declines for every chain
    with that module."""
    cls = getattr(tz.m, module)
    m = cls(0.01) if module in ("WeightDecay", "ClipNorm") else cls()
    known = cls.CAPABILITIES.fused_options
    assert set(m.defaults) <= known, set(m.defaults) - known
