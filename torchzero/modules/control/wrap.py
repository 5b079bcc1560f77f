"""``Wrap``: any ``torch.optim.Optimizer`` as a module."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var

__all__ = ["Wrap"]

PREFIX = "opt_"
"""Prefix of the wrapped optimizer's per-parameter state keys in the module's state."""


def _name(fn: Any) -> str:
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"torch.optim.{qual}" if mod and mod.startswith("torch.optim") else qual


class Wrap(Module):
    r"""Any ``torch.optim.Optimizer`` as a module: its step, taken on the incoming update, becomes the update.

    On the first step ``opt_fn(params, *args, **kwargs)`` builds the optimizer on the parameters
    this module sees (parameters seen later are added with ``add_param_group``). Each step, with
    $x$ the parameters and $u$ the incoming update:

    1. $x_0 \leftarrow$ a copy of $x$; ``p.grad`` $\leftarrow u$; ``optimizer.step()``;
    2. $u \leftarrow x_0 - x$; the parameters are restored to $x_0$ and ``p.grad`` to what it was.

    Used alone, ``Wrap(torch.optim.Adam, lr=1e-3)`` is ``torch.optim.Adam(lr=1e-3)`` (up to
    rounding: the parameters move by $x_0 - (x_0 - x)$); modules before it transform what the
    optimizer sees as the gradient, modules after it transform its step.

    The optimizer's per-parameter state lives in this module's state, under the optimizer's own
    keys prefixed with ``"opt_"`` (``"opt_exp_avg"``), so it is saved by
    ``Modular.state_dict()``, restored by ``load_state_dict`` and copied by ``deepcopy``; the
    optimizer object itself is only a cache that is rebuilt when missing.

    Limits:
        - The arguments must be given here: the optimizer's param-group values (``lr``,
          ``betas`` ...) are the same for all parameters, are not read from ``Modular``'s param
          groups, and changes made to them on the inner optimizer (e.g. by a scheduler attached
          to it) are not saved. Use ``LR`` after ``Wrap`` for schedules and per-group rates.
        - Optimizers whose ``step`` needs a closure (``torch.optim.LBFGS``) and optimizers that
          keep state outside ``optimizer.state[param]`` are not supported.
        - Each step copies the parameters once (memory of one extra set of parameters).
        - ``opt_fn`` is called once at construction on a 2x2 probe tensor to validate the
          arguments, so a bad argument raises here rather than at the first step.

    Args:
        opt_fn: the optimizer class or a function ``(params, *args, **kwargs) -> Optimizer``.
        *args: positional arguments after ``params``.
        **kwargs: keyword arguments, e.g. ``lr=1e-3``.

    Example:
        ``torch.optim.Adam`` after gradient clipping, and ``torch.optim.SGD``'s step halved:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.Wrap(torch.optim.Adam, lr=1e-3))
        >>> opt = tz.Modular(model.parameters(), tz.m.Wrap(torch.optim.SGD, 0.1, momentum=0.9), tz.m.Mul(0.5))
    """

    def __init__(self, opt_fn: Any, *args: Any, **kwargs: Any):
        super().__init__()
        if isinstance(opt_fn, torch.optim.Optimizer):
            raise TypeError(
                f"Wrap: opt_fn must be an optimizer class or a function that builds one, got an optimizer instance "
                f"{type(opt_fn).__name__}; pass the class and its arguments, e.g. Wrap(torch.optim.Adam, lr=1e-3)"
            )
        if not callable(opt_fn):
            raise TypeError(
                f"Wrap: opt_fn must be an optimizer class or a function (params, *args, **kwargs) -> Optimizer, "
                f"got {opt_fn!r} of type {type(opt_fn).__name__}"
            )
        self.opt_fn = opt_fn
        self.args = args
        self.kwargs = kwargs
        self._opt: torch.optim.Optimizer | None = None
        self._probe()

    def _call_repr(self) -> str:
        inner = ", ".join(["params", *map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{_name(self.opt_fn)}({inner})"

    def _probe(self) -> None:
        probe = torch.zeros(2, 2, requires_grad=True)
        try:
            opt = self.opt_fn([probe], *self.args, **self.kwargs)
        except (ValueError, TypeError) as e:
            exc = TypeError if isinstance(e, TypeError) else ValueError
            raise exc(f"Wrap: {self._call_repr()} raised {type(e).__name__}: {e}") from e
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"Wrap: opt_fn must return a torch.optim.Optimizer, but {self._call_repr()} returned {type(opt).__name__}")

    def extra_repr(self) -> str:
        return self._call_repr()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_opt"] = None  # a cache; rebuilt from the state on the next step
        return state

    def reset(self) -> None:
        super().reset()
        self._opt = None

    def _optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        if self._opt is None:
            self._opt = self.opt_fn(list(params), *self.args, **self.kwargs)
            return self._opt
        known = {p for g in self._opt.param_groups for p in g["params"]}
        new = [p for p in params if p not in known]
        if new:
            self._opt.add_param_group({"params": new})
        return self._opt

    def step(self, var: Var) -> Var:
        params = var.params
        if not params:
            return var
        update = var.get_update()
        opt = self._optimizer(params)
        for p in params:  # the module's state is the truth; the optimizer works on it
            st = self.state.get(p)
            opt.state[p] = {k[len(PREFIX) :]: v for k, v in st.items() if k.startswith(PREFIX)} if st else {}
        members = [p for g in opt.param_groups for p in g["params"]]
        saved_grads = [p.grad for p in members]
        start = [p.clone() for p in params]
        try:
            for p in members:
                p.grad = None  # parameters without an update this step are skipped by the optimizer
            for p, u in zip(params, update):
                p.grad = u if u is not p else u.clone()  # apply_transform without params: the tensors are their own params
            opt.step()
            var.update = list(torch._foreach_sub(start, params))
        finally:
            torch._foreach_copy_(params, start)
            for p, g in zip(members, saved_grads):
                p.grad = g
        for p in params:
            st = opt.state.get(p)
            if st:
                self.state[p] = {PREFIX + k: v for k, v in st.items()}
        return var
