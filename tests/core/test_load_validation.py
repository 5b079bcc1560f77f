"""A state dict that doesn't fit is refused before anything changes.

Each case corrupts a real state dict one way. Loading it must raise ``TypeError`` or
``ValueError`` with a message naming what is wrong, and the optimizer must then step exactly
(bitwise, parameters and state) as an untouched copy of itself does.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

import torchzero as tz

SD = dict[str, Any]


def build(params):
    groups = [{"params": params[:2]}, {"params": params[2:], "max_norm": 0.5, "lr": 3e-3}]
    return tz.Modular(groups, tz.m.ClipNorm(1.0), tz.m.Adam(amsgrad=True), tz.m.Alternate(tz.m.LR(1.0), tz.m.LR(0.5)),
                      tz.m.LR(1e-2))


def make_params(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in [(4, 3), (3,), (2, 2)]]


def run(opt, params, start: int, stop: int) -> None:
    for i in range(start, stop):
        g = torch.Generator().manual_seed(100 + i)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()


def first_group(sd: SD) -> dict:
    return sd["param_groups"][0]


def set_state(key: str, value: Any, index: int = 0) -> Callable[[SD], SD]:
    def f(sd: SD) -> SD:
        sd["state"][index][key] = value
        return sd
    return f


def drop_state(key: str) -> Callable[[SD], SD]:
    def f(sd: SD) -> SD:
        del sd["state"][0][key]
        return sd
    return f


def set_group(key: str, value: Any, gi: int = 0) -> Callable[[SD], SD]:
    def f(sd: SD) -> SD:
        sd["param_groups"][gi][key] = value
        return sd
    return f


def set_record(key: str, value: Any) -> Callable[[SD], SD]:
    def f(sd: SD) -> SD:
        for g in sd["param_groups"]:
            g["torchzero"] = {**g["torchzero"], key: value}
        return sd
    return f


def torch_adam_layout(sd: SD) -> SD:
    sd["state"] = {i: {k.split(".", 1)[1]: v for k, v in s.items() if k.startswith("1.")} for i, s in sd["state"].items()}
    for g in sd["param_groups"]:
        del g["torchzero"]
    return sd


def other_chain(sd: SD) -> SD:
    return set_record("modules", {"0": "Normalize", "1": "Adam", "2": "Alternate", "2.0": "LR", "2.1": "LR", "3": "LR"})(sd)


def move_state(src: int, dst: Any) -> Callable[[SD], SD]:
    def f(sd: SD) -> SD:
        sd["state"][dst] = sd["state"].pop(src)
        return sd
    return f


T = torch.ones
CORRUPTIONS: dict[str, Callable[[SD], Any]] = {
    # not a state dict at all
    "list": lambda sd: [sd],
    "none": lambda sd: None,
    "no-state": lambda sd: {"param_groups": sd["param_groups"]},
    "no-param-groups": lambda sd: {"state": sd["state"]},
    "state-is-list": lambda sd: {**sd, "state": list(sd["state"].values())},
    "groups-is-dict": lambda sd: {**sd, "param_groups": first_group(sd)},
    "group-not-dict": lambda sd: {**sd, "param_groups": [1, 2]},
    "group-without-params": lambda sd: {**sd, "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]},
    "params-is-int": set_group("params", 3),
    # other parameters
    "extra-group": lambda sd: {**sd, "param_groups": sd["param_groups"] + [copy.deepcopy(first_group(sd))]},
    "missing-group": lambda sd: {**sd, "param_groups": sd["param_groups"][:1]},
    "group-one-short": lambda sd: set_group("params", first_group(sd)["params"][:1])(sd),
    "group-one-more": lambda sd: set_group("params", first_group(sd)["params"] + [7])(sd),
    "unhashable-id": set_group("params", [[0], 1]),
    # another chain, or another format
    "other-chain": other_chain,
    "fewer-modules": set_record("modules", {"0": "ClipNorm", "1": "Adam"}),
    "record-not-dict": lambda sd: set_group("torchzero", "ClipNorm,Adam")(set_group("torchzero", "ClipNorm,Adam", 1)(sd)),
    "record-modules-list": set_record("modules", ["ClipNorm", "Adam"]),
    "future-format": set_record("format", 99),
    "global-state-unknown-path": set_record("global_state", {"7": {"step": 1}}),
    "global-state-not-dict": set_record("global_state", {"2": 5}),
    "torch-adam-state-dict": torch_adam_layout,
    # state entries that belong to no parameter
    "index-out-of-range": move_state(0, 99),
    "negative-index": move_state(0, -1),
    "float-index": move_state(0, 0.5),
    "numeric-string-index": move_state(0, "0"),
    "tensor-index": lambda sd: move_state(0, torch.tensor(0))(sd),
    "entry-not-dict": lambda sd: {**sd, "state": {**sd["state"], 0: T(3)}},
    "unknown-module-key": set_state("7.exp_avg", T(4, 3)),
    "key-without-path": set_state("exp_avg", T(4, 3)),
    "non-string-key": set_state(5, T(4, 3)),  # type: ignore[arg-type]
    # state entries that don't fit their parameter or module
    "missing-exp-avg-sq": drop_state("1.exp_avg_sq"),
    "missing-step": drop_state("1.step"),
    "exp-avg-none": set_state("1.exp_avg", None),
    "exp-avg-str": set_state("1.exp_avg", "zeros"),
    "exp-avg-number": set_state("1.exp_avg", 0.0),
    "exp-avg-other-shape": set_state("1.exp_avg", T(3, 4, dtype=torch.float64)),
    "exp-avg-other-ndim": set_state("1.exp_avg", T(12, dtype=torch.float64)),
    "exp-avg-smaller": set_state("1.exp_avg", T(3, dtype=torch.float64), index=2),
    "exp-avg-sparse": set_state("1.exp_avg", T(4, 3, dtype=torch.float64).to_sparse()),
    "exp-avg-complex": set_state("1.exp_avg", T(4, 3, dtype=torch.complex128)),
    "step-none": set_state("1.step", None),
    "step-str": set_state("1.step", "3"),
    "step-bool": set_state("1.step", True),
    # invalid settings in the param groups
    "lr-nan": set_group("lr", float("nan")),
    "lr-negative": set_group("lr", -1.0),
    "lr-tensor-2-elements": set_group("lr", torch.tensor([1e-3, 1e-3])),
    "beta1-5": set_group("beta1", 5.0),
    "betas-out-of-range": set_group("betas", (5.0, 0.999)),
    "betas-mixed": set_group("betas", (torch.tensor(0.9), 0.999)),
    "betas-short": set_group("betas", (0.9,)),
    "max-norm-negative": set_group("max_norm", -3.0, gi=1),
    "eps-negative": set_group("eps", -1e-8),
    "amsgrad-str": set_group("amsgrad", "yes"),
}


@pytest.fixture(scope="module")
def trained():
    params = make_params()
    opt = build(params)
    run(opt, params, 0, 5)
    return opt


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_state_dict_is_refused_and_changes_nothing(trained, name):
    opt = copy.deepcopy(trained)
    twin = copy.deepcopy(trained)
    params = [p for g in opt.param_groups for p in g["params"]]
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    bad = CORRUPTIONS[name](copy.deepcopy(trained.state_dict()))
    before = opt.state_dict()
    with pytest.raises((TypeError, ValueError)) as info:
        opt.load_state_dict(bad)
    assert "nothing was changed" in str(info.value) or "Modular" in str(info.value)
    after = opt.state_dict()
    assert repr(after["param_groups"]) == repr(before["param_groups"])
    run(opt, params, 5, 9)
    run(twin, twin_params, 5, 9)
    for a, b in zip(params, twin_params):
        assert torch.equal(a, b), name
    got, want = opt.state_dict(), twin.state_dict()
    for i, s in want["state"].items():
        for k, v in s.items():
            assert torch.equal(torch.as_tensor(got["state"][i][k]), torch.as_tensor(v)), (name, i, k)
    assert got["param_groups"][0]["torchzero"] == want["param_groups"][0]["torchzero"]


def test_there_are_at_least_forty_cases():
    assert len(CORRUPTIONS) >= 40


def test_error_names_what_and_where(trained):
    opt = copy.deepcopy(trained)
    with pytest.raises(ValueError, match=r"'1'.*Adam.*parameter 0.*exp_avg.*shape \(3, 4\).*\(4, 3\)"):
        opt.load_state_dict(set_state("1.exp_avg", T(3, 4, dtype=torch.float64))(copy.deepcopy(trained.state_dict())))
    with pytest.raises(ValueError, match=r"another chain.*0: Normalize.*0: ClipNorm"):
        opt.load_state_dict(other_chain(copy.deepcopy(trained.state_dict())))
    with pytest.raises(ValueError, match=r"param group 0.*lr"):
        opt.load_state_dict(set_group("lr", -1.0)(copy.deepcopy(trained.state_dict())))


def test_named_parameters_are_named_in_errors():
    model = torch.nn.Linear(3, 2).double()
    opt = tz.Modular(model.named_parameters(), tz.m.Adam(), tz.m.LR(1e-2))
    model(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    sd["state"][1]["0.exp_avg"] = torch.zeros(5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"parameter 1 \('bias'\)"):
        opt.load_state_dict(sd)


def test_a_valid_load_still_resumes_bitwise(trained):
    params = make_params(seed=1)
    opt = build(params)
    with torch.no_grad():
        for p, q in zip(params, [p for g in trained.param_groups for p in g["params"]]):
            p.copy_(q)
    opt.load_state_dict(copy.deepcopy(trained.state_dict()))
    ref = copy.deepcopy(trained)
    ref_params = [p for g in ref.param_groups for p in g["params"]]
    run(opt, params, 5, 9)
    run(ref, ref_params, 5, 9)
    for a, b in zip(params, ref_params):
        assert torch.equal(a, b)
