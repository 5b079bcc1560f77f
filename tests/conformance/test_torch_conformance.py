"""``tz.Modular`` behaves as a ``torch.optim`` optimizer where torch's generic tests look.

Each optimizer of ``adapter.SUPPORTED`` is built by the adapter from torch's own sample
arguments (``optim_db``'s ``optim_inputs_func``) and compared with the torch optimizer built
from the same arguments: trajectories, ``state_dict`` round trips, hooks, tensor learning rates,
the exception types of invalid arguments, and the fused path against the general one. PyTorch's
suite itself runs through ``run_torch_suite.py``; these are our own checks of the same
properties, and need nothing outside this repository.
"""
from __future__ import annotations

import sys
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from adapter import SUPPORTED, Unsupported, adapted, chain_for  # noqa: E402

pytest.importorskip("expecttest")  # torch's test utilities import it
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db  # noqa: E402

import torchzero as tz  # noqa: E402

INFOS = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls in SUPPORTED}


def _inputs(name: str) -> list[tuple[str, dict[str, Any]]]:
    """torch's sample arguments for ``name`` on the CPU that the adapter can express."""
    out = []
    for oi in INFOS[name].optim_inputs_func(device="cpu"):
        try:
            chain_for(INFOS[name].optim_cls, oi.kwargs)
        except Unsupported:
            continue
        out.append((f"{name}-{oi.desc}", oi.kwargs))
    return out


CASES = [case for name in INFOS for case in _inputs(name)]
IDS = [c[0].replace(" ", "_") for c in CASES]


def _model(seed: int = 0, dtype: torch.dtype = torch.float32, name: str = "") -> torch.nn.Module:
    """A small MLP; for Muon (which takes matrices only) three bias-free layers."""
    torch.manual_seed(seed)
    if name == "Muon":
        layers = [torch.nn.Linear(4, 6, bias=False), torch.nn.Tanh(), torch.nn.Linear(6, 5, bias=False), torch.nn.Tanh(), torch.nn.Linear(5, 2, bias=False)]
        return torch.nn.Sequential(*layers).to(dtype)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).to(dtype)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 10, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(8, 4, generator=g).to(dtype)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal structure and values: tensors bitwise (``torch.equal``), everything else ``==``."""
    assert type(a) is type(b) or (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _both(case: tuple[str, dict[str, Any]]) -> tuple[type, dict[str, Any]]:
    name, kwargs = case
    return INFOS[name.split("-")[0]].optim_cls, deepcopy(kwargs)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trajectory_matches_torch(case):
    torch_cls, kwargs = _both(case)
    ours, theirs = _model(name=torch_cls.__name__), _model(name=torch_cls.__name__)
    _train(ours, adapted(torch_cls)(ours.parameters(), **deepcopy(kwargs)))
    _train(theirs, torch_cls(theirs.parameters(), **kwargs))
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_loads_into_a_fresh_optimizer_and_round_trips(case):
    torch_cls, kwargs = _both(case)
    cls = adapted(torch_cls)
    model = _model(name=torch_cls.__name__)
    params = list(model.parameters())
    # the parameters in two groups with the same settings (torch's "repeated groups" layout)
    opt = cls([{"params": params[:2]}, {"params": params[2:]}], **deepcopy(kwargs))
    _train(model, opt, steps=3)
    sd = opt.state_dict()
    fresh = cls([{"params": params[:2]}, {"params": params[2:]}], **deepcopy(kwargs))
    fresh.load_state_dict(deepcopy(sd))
    _assert_same(fresh.state_dict(), sd)
    # and the two step identically from there
    twin = deepcopy(model)
    twin_opt = cls([{"params": list(twin.parameters())[:2]}, {"params": list(twin.parameters())[2:]}], **deepcopy(kwargs))
    twin_opt.load_state_dict(deepcopy(sd))
    _train(model, opt, steps=2, seed=5)
    _train(twin, twin_opt, steps=2, seed=5)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(INFOS))
def test_hooks_run_as_in_torch(name):
    """Step and state-dict hooks fire in torch's order with torch's arguments; post-hooks see
    and can edit the loaded state; ``opt.state`` takes any key, as a dict does."""
    torch_cls = INFOS[name].optim_cls
    log: dict[str, list[str]] = {}
    for impl, make in (("torch", torch_cls), ("tz", adapted(torch_cls))):
        model = _model(name=name)
        opt = make(model.parameters(), lr=0.01)
        seen = log.setdefault(impl, [])
        opt.register_step_pre_hook(lambda o, a, k: seen.append("step-pre"))
        opt.register_step_post_hook(lambda o, a, k: seen.append("step-post"))
        opt.register_state_dict_pre_hook(lambda o: seen.append("sd-pre"))

        def sd_post(o, sd):  # noqa: ANN001, ANN202
            seen.append(f"sd-post:{sorted(sd)}")
            sd["extra"] = 1
            return sd

        opt.register_state_dict_post_hook(sd_post)

        def load_pre(o, sd):  # noqa: ANN001, ANN202
            seen.append("load-pre")
            sd = dict(sd)
            sd.pop("extra", None)
            return sd

        opt.register_load_state_dict_pre_hook(load_pre)

        def load_post(o):  # noqa: ANN001, ANN202
            p = next(iter(model.parameters()))
            seen.append(f"load-post:{bool(o.state[p]) == bool(name != 'SGD')}")
            o.state["note"] = "written by a hook"

        opt.register_load_state_dict_post_hook(load_post)
        _train(model, opt, steps=1)
        sd = opt.state_dict()
        assert sd["extra"] == 1
        opt.load_state_dict(sd)
        assert opt.state["note"] == "written by a hook"
        opt.state["test"] = 1
        assert opt.state["test"] == 1
    assert log["tz"] == log["torch"]


LR_SHAPES = {"0-dim": (), "(1,)": (1,), "(1,1)": (1, 1)}


@pytest.mark.parametrize("shape", list(LR_SHAPES))
@pytest.mark.parametrize("name", list(INFOS))
def test_tensor_lr_matches_torch(name, shape):
    torch_cls = INFOS[name].optim_cls
    results = []
    for make in (torch_cls, adapted(torch_cls)):
        model = _model(name=name)
        params = list(model.parameters())
        lr = torch.tensor(0.01).reshape(LR_SHAPES[shape])
        # a Tensor lr in one group, a float in the other
        kw = {"foreach": False} if make is torch_cls and name != "Muon" else {}
        if name == "Rprop":  # Rprop's adapter chain reads lr at construction: one lr for all groups
            opt = make(params, lr=lr, **kw)
        else:
            opt = make([{"params": params[:2], "lr": lr}, {"params": params[2:], "lr": 0.02}], lr=0.01, **kw)
        _train(model, opt, steps=5)
        results.append(params)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _error_inputs(name: str) -> list:
    return list(INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32))


ERRORS = [(name, i) for name in INFOS for i in range(len(_error_inputs(name)))]


def _outcome(make: Any, ei: Any) -> tuple[str, str] | None:
    oi = ei.optimizer_error_input
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            params = [dict(g) if isinstance(g, dict) else g for g in oi.params] if isinstance(oi.params, list) else oi.params
            opt = make(params, **deepcopy(oi.kwargs))  # (torch writes its defaults into group dicts)
            if ei.error_on == OptimizerErrorEnum.STEP_ERROR:
                opt.step()
        except Unsupported:
            return ("Unsupported", "")
        except Exception as e:  # noqa: BLE001 (compared with torch's)
            return (type(e).__name__, str(e))
    relevant = [w for w in caught if issubclass(w.category, ei.error_type)] if issubclass(ei.error_type, Warning) else []
    return (relevant[0].category.__name__, str(relevant[0].message)) if relevant else None


#: Arguments torch refuses and torchzero accepts on purpose (see the migration guide): Tensor
#: lr/betas on the multi-tensor path; Muon on 1-D/N-D (momentum only / flattened) and complex
#: parameters (orthogonalized as real matrices).
ACCEPTED = ("not supported for capturable=False and foreach=True", "Muon only supports 2D parameters", "Muon does not support complex parameters")


@pytest.mark.parametrize("name, index", ERRORS, ids=[f"{n}-{_error_inputs(n)[i].optimizer_error_input.desc}" for n, i in ERRORS])
def test_invalid_arguments_raise_torchs_exception_type(name, index):
    ei = _error_inputs(name)[index]
    if any(a in ei.error_regex for a in ACCEPTED):
        pytest.skip("accepted on purpose (see ACCEPTED)")
    theirs = _outcome(INFOS[name].optim_cls, ei)
    ours = _outcome(adapted(INFOS[name].optim_cls), ei)
    assert theirs is not None and theirs[0] == ei.error_type.__name__
    assert ours is not None and ours[0] == theirs[0], f"torch: {theirs}; torchzero: {ours}"


ADAM_CASES = [c for c in CASES if c[0].split("-")[0] in ("Adam", "AdamW")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("case", ADAM_CASES, ids=[c[0].replace(" ", "_") for c in ADAM_CASES])
def test_fused_matches_general_path(case, dtype):
    torch_cls, kwargs = _both(case)
    kwargs.pop("fused", None)
    modules, _ = chain_for(torch_cls, kwargs)
    out = []
    for fused in (None, False):
        model = _model(dtype=dtype)
        opt = tz.Modular(model.parameters(), *chain_for(torch_cls, kwargs)[0], fused=fused)
        _train(model, opt, steps=8)
        out.append(list(model.parameters()))
        step = next(v for k, v in opt.state[next(iter(model.parameters()))].items() if k.endswith(".step"))
        assert type(step) is torch.Tensor and step.shape == () and step.dtype == torch.float32 and step.item() == 8
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, **tol)
