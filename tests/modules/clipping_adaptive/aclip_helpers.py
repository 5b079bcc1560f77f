"""Helpers of the adaptive clipping tests: a module that records what reaches it, and runners.

(Not a ``conftest.py``: a second ``conftest`` module would shadow ``tests/conftest.py``.)
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

import torchzero as tz

D = torch.float64


class Record(tz.Module):
    """Records (copies of) what reaches it: the update (``seen``; with ``what="grad"`` the
    gradient instead, without forming the update), the gradients and the parameters. Changes
    nothing."""

    def __init__(self, what: str = "update") -> None:
        super().__init__()
        self.what = what
        self.seen: list[list[Tensor]] = []
        self.grads: list[list[Tensor]] = []
        self.params: list[list[Tensor]] = []

    def step(self, var: tz.Var) -> tz.Var:
        self.grads.append([g.clone() for g in var.get_grad()])
        self.seen.append(self.grads[-1] if self.what == "grad" else [u.clone() for u in var.get_update()])
        self.params.append([p.detach().clone() for p in var.params])
        return var


def params_like(stream_step: Sequence[Tensor], seed: int = 1, dtype: torch.dtype = D) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(t.shape, generator=g, dtype=D).to(dtype)) for t in stream_step]


def run_modular(
    modules: Sequence[Any],
    stream: Sequence[Sequence[Tensor]],
    params: Sequence[torch.nn.Parameter] | None = None,
    groups: Callable[[list[torch.nn.Parameter]], Any] | None = None,
) -> list[list[Tensor] | None]:
    """Runs ``Modular(params, *modules, Record(), LR(0))`` on the stream (``p.grad`` set to a copy
    of each step's tensors) and returns what reached ``Record`` each step (``None``: skipped).
    The parameters do not move, so parameter-dependent modules (AGC) see fixed parameters."""
    params = list(params) if params is not None else params_like(stream[0])
    rec = Record()
    opt = tz.Modular(groups(params) if groups else params, *modules, rec, tz.m.LR(0.0))
    out: list[list[Tensor] | None] = []
    for ts in stream:
        for p, t in zip(params, ts):
            p.grad = t.clone()
        n = len(rec.seen)
        opt.step()
        out.append(rec.seen[-1] if len(rec.seen) > n else None)
    return out


def assert_lists_close(a: Sequence[Tensor], b: Sequence[Tensor], rtol: float = 1e-10, atol: float = 1e-12, msg: str = "") -> None:
    assert len(a) == len(b), msg
    for i, (x, y) in enumerate(zip(a, b)):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m: f"{msg} tensor {i}: {m}")


def roundtrip(sd: dict) -> dict:
    """``torch.save`` then ``torch.load(weights_only=True)``, as a checkpoint does."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def snapshot(opt: tz.Modular) -> dict:
    """A deep copy of everything a step may change: parameters, every module's per-parameter
    state and global state (by module path)."""
    def copy(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.detach().clone()
        if isinstance(v, dict):
            return {k: copy(x) for k, x in v.items()}
        return v

    return {
        "params": [p.detach().clone() for g in opt.param_groups for p in g["params"]],
        "state": {path: {i: copy(dict(m.state[p])) for i, p in enumerate(m._params) if p in m.state} for path, m in opt.chain.named_modules()},
        "global": {path: copy(dict(m.global_state)) for path, m in opt.chain.named_modules()},
    }


def assert_bitwise(a: Any, b: Any, path: str = "") -> None:
    """Bitwise equality of nested dicts/lists of tensors and numbers (NaN == NaN)."""
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a.view(-1).view(torch.uint8) if a.numel() else a, b.view(-1).view(torch.uint8) if b.numel() else b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_bitwise(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
