"""``Split``: different chains for different parameters."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ...core.module import Module
from ...core.var import Var

__all__ = ["Split"]

Filter = Any
"""A predicate ``(param) -> bool``, a tensor, an ``nn.Module``, a name pattern, or a list of these."""


def _parse_filter(filter: Any, owner: str = "Split") -> tuple[list[Callable[[Tensor], bool]], list[Tensor], list[str]]:
    """Splits a filter into (predicates, tensors, name patterns); raises for anything else."""
    preds: list[Callable[[Tensor], bool]] = []
    tensors: list[Tensor] = []
    patterns: list[str] = []

    def add(f: Any, top: bool) -> None:
        if isinstance(f, Tensor):
            tensors.append(f)
        elif isinstance(f, nn.Module):
            tensors.extend(f.parameters())
        elif isinstance(f, str):
            if not f:
                raise ValueError(f"{owner}: filter contains an empty name pattern")
            patterns.append(f)
        elif callable(f) and not isinstance(f, type):
            preds.append(f)
        elif top and isinstance(f, Iterable) and not isinstance(f, (bytes, dict)):
            items = list(f)
            if not items:
                raise ValueError(
                    f"{owner}: filter is an empty list (an exhausted generator such as a second use of "
                    "model.parameters()?); pass tensors, an nn.Module, a predicate or name patterns"
                )
            for item in items:
                add(item, top=False)
        else:
            raise TypeError(
                f"{owner}: filter must be a predicate (param) -> bool, a tensor, an nn.Module, a parameter-name "
                f"pattern (str), or a list of these, got {f!r} of type {type(f).__name__}"
            )

    add(filter, top=True)
    return preds, tensors, patterns


class Split(Module):
    r"""Applies ``true`` to the parameters selected by ``filter`` and ``false`` to the others.

    Each branch runs on a ``Var`` holding only its parameters (with their gradients and update);
    the results are merged back in the original order, so modules after ``Split`` see one update
    for all parameters. A branch that is ``None`` leaves its parameters' update unchanged.

    ``filter`` selects parameters by any of (a list means "any of them"):

    - a predicate ``(param) -> bool``, e.g. ``lambda p: p.ndim >= 2``;
    - a tensor or tensors, e.g. ``model.head.parameters()`` (compared by identity);
    - an ``nn.Module``: its parameters (taken at construction);
    - parameter-name patterns, ``fnmatch``-style and case-sensitive, e.g. ``"*.bias"`` or
      ``["*.bias", "*norm*"]``; the names are those given to ``Modular`` with
      ``model.named_parameters()`` (or a model), read from each param group's ``"param_names"``.
      A pattern filter on a parameter without a name raises ``ValueError`` at the step.

    A branch that skips the step (``var.skip_update``, e.g. ``GradientAccumulation``) leaves its
    own parameters unmoved: their update is set to zero for the modules after ``Split``; the whole
    step is skipped only if every parameter is in a skipping branch. Each branch keeps its state
    under the child names ``true`` and ``false`` (``"<path>.true.<key>"`` in ``state_dict``).

    Args:
        filter: which parameters ``true`` applies to (see above).
        true: modules for the selected parameters, or ``None`` (identity).
        false: modules for the other parameters, or ``None`` (identity).

    Example:
        Clip the norm of weight matrices but not of biases and norm weights, by name:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))
        >>> opt = tz.Modular(
        ...     model.named_parameters(),
        ...     tz.m.Split(["*.bias", "1.*"], true=None, false=tz.m.ClipNorm(1.0)),
        ...     tz.m.Adam(),
        ...     tz.m.LR(1e-3),
        ... )

        signSGD for matrices and Adam for everything else, by predicate:

        >>> opt = tz.Modular(model.parameters(), tz.m.Split(lambda p: p.ndim >= 2, tz.m.Sign(), tz.m.Adam()), tz.m.LR(1e-3))
    """

    def __init__(self, filter: Filter, true: Any, false: Any):
        super().__init__()
        self._preds, self._tensors, self._patterns = _parse_filter(filter)
        # parameter -> whether its name matches a pattern, found when Modular binds the param
        # groups (so the step does no string matching, which torch.compile could not trace)
        self._name_match: dict[Tensor, bool] = {}
        if true is not None:
            self.set_child("true", true)
        if false is not None:
            self.set_child("false", false)

    def extra_repr(self) -> str:
        parts = []
        if self._patterns:
            parts.append(f"patterns={self._patterns!r}")
        if self._tensors:
            parts.append(f"tensors={len(self._tensors)}")
        if self._preds:
            parts.append(f"predicates={[getattr(f, '__name__', repr(f)) for f in self._preds]}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ selection
    def _bind_group(self, group: dict[str, Any], keys: list[Tensor] | None = None) -> None:
        super()._bind_group(group, keys)
        names = group.get("param_names") if self._patterns else None
        if names is not None:
            for p, name in zip(group["params"] if keys is None else keys, names):
                self._name_match[p] = any(fnmatch.fnmatchcase(name, pat) for pat in self._patterns)

    def _names(self, params: list[Tensor]) -> list[str | None]:
        """Each parameter's name from its param group's ``"param_names"`` (None where there is none).

        The group is the one ``Modular`` bound to this module (``settings(p).maps[1]``, possibly
        a view hiding some keys, whose ``.group`` is the dict). A complex parameter is seen by the
        modules as a real view of it, found by its data pointer.
        """
        tables: dict[int, tuple[dict[Tensor, str], dict[int, str]]] = {}
        out: list[str | None] = []
        for p in params:
            group = self.settings(p).maps[1]
            group = getattr(group, "group", group)
            table = tables.get(id(group))
            if table is None:
                names = group.get("param_names")
                members = list(group.get("params", [])) if names is not None else []
                by_tensor = dict(zip(members, names or []))
                by_ptr = {q.data_ptr(): n for q, n in zip(members, names or []) if q.is_complex()}
                table = tables[id(group)] = (by_tensor, by_ptr)
            name = table[0].get(p)
            if name is None and table[1] and p.ndim > 0 and p.shape[-1] == 2:
                name = table[1].get(p.data_ptr())
            out.append(name)
        return out

    def select(self, params: list[Tensor]) -> list[bool]:
        """Whether each parameter is selected by ``filter`` (goes to ``true``)."""
        chosen = {id(t) for t in self._tensors}
        out = [id(p) in chosen for p in params]
        if self._preds:
            out = [o or any(bool(f(p)) for f in self._preds) for o, p in zip(out, params)]
        if self._patterns:
            known = self._name_match
            if all(p in known for p in params):
                return [o or known[p] for o, p in zip(out, params)]
            for i, (p, name) in enumerate(zip(params, self._names(params))):
                if out[i]:
                    continue
                if name is None:
                    raise ValueError(
                        f"Split: filter has parameter-name patterns {self._patterns}, but the parameter of shape "
                        f"{tuple(p.shape)} has no name; pass named parameters to Modular, e.g. "
                        "tz.Modular(model.named_parameters(), ...)"
                    )
                out[i] = any(fnmatch.fnmatchcase(name, pat) for pat in self._patterns)
        return out

    # ------------------------------------------------------------------ stepping
    def step(self, var: Var) -> Var:
        params = var.params
        if not params:
            return var
        mask = self.select(params)
        branches = [("true", [i for i, m in enumerate(mask) if m]), ("false", [i for i, m in enumerate(mask) if not m])]
        ran: list[tuple[list[int], Var]] = []
        covered = 0
        for name, idx in branches:
            child = self.children.get(name)
            if child is None or not idx:
                continue
            sub = child.step(var.child(None if var.update is None else [var.update[i] for i in idx], idx))
            # a branch's skip leaves only its own parameters unchanged (below), not the step
            var.absorb(sub, idx, skip=False)
            ran.append((idx, sub))
            if sub.skip_update:
                covered += len(idx)
        if not ran:
            return var
        if covered == len(params):
            var.skip_update = True
            return var
        if var.update is None and all(sub.update is None and not sub.skip_update for _, sub in ran):
            return var  # no branch formed an update: it is still the gradient
        update: list[Tensor | None] = list(var.update) if var.update is not None else [None] * len(params)
        for idx, sub in ran:
            if sub.skip_update:
                values = [torch.zeros_like(p) for p in sub.params]
            elif sub.update is not None:
                values = sub.update
            else:
                values = [g.clone() for g in sub.get_grad()]
            for j, i in enumerate(idx):
                update[i] = values[j]
        grads = var.grad
        var.update = [u if u is not None else grads[i].clone() for i, u in enumerate(update)]  # type: ignore[index]
        return var
