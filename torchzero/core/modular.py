"""``Modular``: a ``torch.optim.Optimizer`` that runs a chain of modules.

It owns the param groups, builds the :class:`~torchzero.core.var.Var` of each step, runs the
chain and moves the parameters by ``-update``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import warnings

import torch
from torch import Tensor, nn

from ..functional.norms import finite_probe, global_norm
from ..utils.validation import check_choice
from .chain import Chain, Chainable, flatten_modules
from .fused import plan
from .module import Module
from .settings import is_uniform, resolve
from .sync import host_bool
from .var import Var

__all__ = ["Modular", "NONFINITE_POLICIES"]

NONFINITE_POLICIES = ("skip", "raise", "propagate")
"""What :class:`Modular` does on a step whose gradients (or loss) contain NaN or inf."""

_COMPILE_HINT = (
    "torchzero: Modular(nonfinite='skip' or 'raise') decides on the host whether this step's gradients are finite "
    "(one host sync), which torch.compile(fullgraph=True) cannot capture. To compile the whole step, build the "
    "optimizer with Modular(..., nonfinite='propagate') (and, to skip bad steps, check the gradients outside the "
    "compiled step); or compile without fullgraph=True (the step then compiles in two graphs around the check). "
    "See docs/guide/compile.md."
)


class _StateView(MutableMapping):
    """``Modular.state``: a live, read-mostly view of every module's per-parameter state.

    ``opt.state[p]`` is a dict keyed ``"<module path>.<key>"`` (``"1.exp_avg"``), built on access;
    this is the layout ``state_dict()`` saves, as ``torch.optim`` optimizers do.
    """

    def __init__(self, opt: Modular):
        self._opt = opt

    def _modules(self) -> Iterator[tuple[str, Module]]:
        return ((path, m) for path, m in self._opt.chain.named_modules() if path)

    def __getitem__(self, p: Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {}
        p = self._opt._key(p)
        for path, m in self._modules():
            s = m.state.get(p)
            if s:
                out.update({f"{path}.{k}": v for k, v in s.items()})
        return out

    def __setitem__(self, p: Tensor, flat: dict[str, Any]) -> None:
        modules = sorted(self._modules(), key=lambda x: -len(x[0]))  # longest path first
        per: dict[str, dict[str, Any]] = defaultdict(dict)
        for key, v in flat.items():
            for path, _ in modules:
                if key.startswith(path + ".") and "." not in key[len(path) + 1 :]:
                    per[path][key[len(path) + 1 :]] = v
                    break
            else:
                raise KeyError(f"Modular.load_state_dict: state key {key!r} does not belong to any module of this chain")
        mods = dict(modules)
        p = self._opt._key(p)
        for path, s in per.items():
            mods[path].state[p] = s

    def __delitem__(self, p: Tensor) -> None:
        p = self._opt._key(p)
        for _, m in self._modules():
            m.state.pop(p, None)

    def __iter__(self) -> Iterator[Tensor]:
        seen: dict[Tensor, None] = {}
        param_of = self._opt._param_of
        for _, m in self._modules():
            for p, s in m.state.items():
                if s:
                    seen.setdefault(param_of.get(p, p), None)
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _as_params(params: Any) -> Any:
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, Iterable) and not isinstance(params, (dict, str)):
        return list(params)
    raise TypeError(
        f"Modular: params must be an nn.Module, a tensor, an iterable of tensors, of (name, tensor) pairs "
        f"or of param-group dicts, got {type(params).__name__}"
    )


def _unwrap_chains(modules: list[Module]) -> list[Module]:
    """A top-level ``Chain`` is the same as listing its modules: flatten it, so the chain's shape
    (a trailing LR, a fused form, the published ``"lr"``) is seen through it."""
    out: list[Module] = []
    for m in modules:
        if type(m) is Chain:
            out.extend(_unwrap_chains(m.modules))
        else:
            out.append(m)
    return out


def _check_guards_first(chain: Chain) -> None:
    """Step guards (``GUARD = True``) must come before every other module, at the top level."""
    seen_other = None
    for m in chain.modules:
        if getattr(m, "GUARD", False):
            if seen_other is not None:
                raise ValueError(
                    f"Modular: {type(m).__name__} must come before {type(seen_other).__name__}: a guard skips the whole "
                    f"step, which leaves the optimizer unchanged only if no module ran before it"
                )
        elif seen_other is None:
            seen_other = m
    top = {id(m) for m in chain.modules}
    for _, m in chain.named_modules():
        if getattr(m, "GUARD", False) and id(m) not in top:
            raise ValueError(f"Modular: {type(m).__name__} is a step guard and must be at the top level of the chain, first")


class Modular(torch.optim.Optimizer):
    """An optimizer made of a chain of modules.

    Each step, the modules transform the update in order (the first one receives the gradient)
    and the parameters move by ``-update``. Parameters whose ``.grad`` is None are skipped: not
    moved and their state untouched.

    Args:
        params: an ``nn.Module``, tensors, ``(name, tensor)`` pairs (``model.named_parameters()``),
            or param-group dicts. Param-group keys override the settings of every module that
            has a setting of that name (``{"params": biases, "max_norm": 0.1}``).
        *modules: the modules, in order; lists are flattened.
        nonfinite: what to do when the gradients (or the closure's loss) contain NaN or inf:
            ``"skip"`` (default): skip the step, leaving parameters and all module state
            bitwise unchanged, count it in ``opt.skipped_steps`` and warn; ``"raise"``: raise
            ``FloatingPointError`` (nothing changed); ``"propagate"``: apply the step as
            ``torch.optim`` optimizers do (a NaN reaches its own parameter; global norms treat a
            non-finite norm as "don't clip", so other parameters are not poisoned). The check
            costs one read of the gradients (none when the chain starts with a module that
            reads them anyway: a global L2 clip before Adam, or ClipNorm, Normalize or
            Centralize) and one host sync per step; a sum or norm of finite gradients that
            overflows counts as non-finite. ``torch.compile(opt.step,
            fullgraph=True)`` needs ``"propagate"`` (see the compile guide).
        fused: ``None`` (default): run the chain as one fused Adam pass when it has a fused
            form (torchzero's CPU kernel or torch's fused Adam; see the performance guide);
            ``False``: never; ``True``: require it. Inside
            ``torch.compile`` the general path is traced instead, for the compiler to fuse.
        full_stats: also record statistics that cost a pass over the data (elementwise
            clipping fractions); see :meth:`stats` (default: ``False``).

    Each param group gets an ``"lr"`` key when the chain has an :class:`~torchzero.m.LR` module
    (its ``lr`` is the default), so every ``torch.optim.lr_scheduler`` works.

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-2))
        >>> loss = model(torch.randn(8, 4)).pow(2).mean()
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: Any,
        *modules: Chainable,
        nonfinite: str = "skip",
        fused: bool | None = None,
        full_stats: bool = False,
    ):
        self.nonfinite = check_choice("nonfinite", nonfinite, NONFINITE_POLICIES, owner="Modular")
        if fused is not None and not isinstance(fused, bool):
            raise TypeError(f"Modular: fused must be None, True or False, got {fused!r}")
        if not isinstance(full_stats, bool):
            raise TypeError(f"Modular: full_stats must be True or False, got {full_stats!r}")
        flat = _unwrap_chains(flatten_modules(modules, "Modular"))
        if not flat:
            raise ValueError("Modular: no modules given; pass at least one, e.g. tz.Modular(params, tz.m.Adam(), tz.m.LR(1e-3))")
        self.chain = Chain(*flat)
        defaults: dict[str, Any] = {}
        for m in self.chain.modules:  # top level only: nested modules keep their own values
            for key in m.GROUP_KEYS:
                defaults.setdefault(key, m.defaults[key])
        top = {id(m) for m in self.chain.modules}
        _check_guards_first(self.chain)
        for _, m in self.chain.named_modules():
            if id(m) not in top:
                m._hidden_group_keys = frozenset(defaults)
        super().__init__(_as_params(params), defaults)
        self.state = _StateView(self)  # type: ignore[assignment]
        self._modules = [m for _, m in self.chain.named_modules()]
        last = self.chain.modules[-1]
        self._trailing_lr = last if getattr(last, "FUSED_ROLE", None) == "lr" else None
        self._head = self.chain.modules[:-1] if self._trailing_lr is not None else self.chain.modules
        for m in self._modules:
            m.full_stats = full_stats
        self._fused_plan = None if fused is False else plan(self.chain.modules)
        if fused and (
            self._fused_plan is None
            or any(self._fused_plan._specs(g, g["params"][0]) is None for g in self.param_groups)
        ):
            raise ValueError(
                "Modular: fused=True, but this chain has no fused form; fused chains are "
                "[ClipNorm/Normalize(dim='global')] Adam [WeightDecay] LR"
            )

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        param_group = {**param_group, "params": params}  # a generator is consumed once: keep the list
        plain = [p[1] if isinstance(p, tuple) else p for p in params]
        if len({id(p) for p in plain}) != len(plain):
            raise ValueError("Modular: a param group contains the same parameter twice; pass each parameter once")
        for name, value in param_group.items():
            if name in ("params", "param_names"):
                continue
            for _, m in self.chain.named_modules():
                if name in m.defaults:
                    m.validate_settings({name: value})
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if not hasattr(self, "_real"):
            self._real: dict[Tensor, Tensor] = {}
            self._param_of: dict[Tensor, Tensor] = {}
        for p in group["params"]:
            if p.is_complex() and p not in self._real:
                # modules see complex parameters as real views (..., 2), as torch.optim does
                view = torch.view_as_real(p.detach())
                self._real[p] = view
                self._param_of[view] = p
        self.chain._bind_group(group, [self._key(p) for p in group["params"]])

    def _key(self, p: Tensor) -> Tensor:
        """The tensor modules see for parameter ``p`` (a real view of a complex parameter)."""
        return self._real.get(p, p) if self._real else p

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def step(self, closure: Callable[..., Any] | None = None) -> Any:  # type: ignore[override]
        """Performs one step.

        Args:
            closure: optional ``closure(backward=True)`` that zeroes the gradients, computes the
                loss and, if ``backward``, calls ``loss.backward()``; it is called once, before
                the modules run. Plain zero-argument closures work too.

        Returns:
            The loss returned by the closure, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]] = []
        for group in self.param_groups:
            # comprehensions, not one loop with branches: this runs for every parameter each step
            gp: list[Tensor] = [p for p in group["params"] if p.grad is not None]
            if not gp:
                continue
            gg: list[Tensor] = [p.grad for p in gp]  # type: ignore[misc]
            if self._real:  # complex parameters: their real views
                gp = [self._real.get(p, p) for p in gp]
                gg = [torch.view_as_real(g) if g.is_complex() else g for g in gg]
            if any([g.is_sparse for g in gg]):  # a list: torch.compile traces it, not a generator
                p = [p for p, g in zip(gp, gg) if g.is_sparse][0]
                raise RuntimeError(
                    f"Modular: parameter of shape {tuple(p.shape)} has a sparse gradient, which torchzero modules "
                    f"({', '.join(type(m).__name__ for m in self.chain.modules)}) do not support; "
                    "use a dense layer (e.g. nn.Embedding(sparse=False))"
                )
            groups.append((group, gp, gg))
        if not groups:
            return loss
        for m in self._modules:
            if m._last_stats:
                m._last_stats = {}
        total_norm = None
        params = [p for _, gp, _ in groups for p in gp]
        grads = [g for _, _, gg in groups for g in gg]
        var = Var(params=params, closure=closure, grad=grads, loss=loss)
        head = self._head
        i = 0
        if self.nonfinite != "propagate":
            plan = self._fused_plan
            check = None
            if plan is not None and plan.scale is not None:  # the fused clip needs this norm anyway
                total_norm = check = global_norm(grads, 2.0)
            elif plan is None and head and getattr(head[0], "PROBES_GRAD", False) and head[0].target == "update" and head[0]._has_copy_form():
                # a stateless first module reads the gradients anyway: run it first and check
                # what it measured (its norms, its means) instead of reading them once more
                var = head[0].step(var)
                check = head[0].take_grad_probe()
                i = 1
            if check is None:
                check = finite_probe(grads)
            if not self._finite(check, loss):
                if i:
                    head[0]._last_stats = {}  # the statistics of a step that didn't happen
                return loss
        if self._fused_plan is not None and self._fused_plan.step(groups, total_norm):  # declines under torch.compile
            return loss
        lr_module = self._trailing_lr
        # an index, not an iterator: under torch.compile a graph break inside a module (a step
        # guard's host sync) resumes in this loop, and dynamo mishandles a resumed list iterator
        while i < len(head):
            var = head[i].step(var)
            if var.skip_update:
                return loss
            i += 1
        update = var.update if var.update is not None else var.grad
        assert update is not None
        if lr_module is None:
            torch._foreach_sub_(params, update)
            return loss
        # a trailing LR is folded into the parameter update: one pass instead of two
        (lr,) = resolve(lr_module.settings_list(params), "lr")
        if is_uniform(lr) and not isinstance(lr, Tensor):
            if torch.compiler.is_compiling():
                # ``u * lr`` lets inductor take lr as an input; a scalar argument of a foreach op
                # would be specialised, recompiling whenever a scheduler changes lr
                torch._foreach_sub_(params, [u * lr for u in update])
            else:
                torch._foreach_add_(params, update, alpha=-lr)
        else:
            torch._foreach_sub_(params, torch._foreach_mul(update, lr if is_uniform(lr) else list(lr)))
        return loss

    @property
    def skipped_steps(self) -> int:
        """How many steps the non-finite policy skipped (saved in ``state_dict``)."""
        return self.chain.global_state.get("skipped_steps", 0)

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self.chain.global_state["skipped_steps"] = value

    def _finite(self, total_norm: Tensor, loss: Any) -> bool:
        """Applies the non-finite policy; ``False`` means: skip this step (one host sync)."""
        bad = ~torch.isfinite(total_norm)
        if isinstance(loss, Tensor):
            bad = bad | ~torch.isfinite(loss.detach()).all()
        if not host_bool(bad, _COMPILE_HINT):
            return True
        what = "the gradients" if not bool(torch.isfinite(total_norm)) else "the loss"  # total_norm: the probe
        if self.nonfinite == "raise":
            raise FloatingPointError(
                f"Modular: {what} of this step contain NaN or inf (check value {total_norm.item()}); nothing was "
                "changed. Pass nonfinite='skip' to skip such steps, or 'propagate' to apply them as torch.optim does."
            )
        self.skipped_steps += 1
        warnings.warn(
            f"Modular: skipped a step because {what} contain NaN or inf (skipped so far: {self.skipped_steps}); "
            "parameters and optimizer state are unchanged",
            RuntimeWarning,
            stacklevel=3,
        )
        return False

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, Tensor]:
        """What the modules measured and did on the last step, as one flat dict of 0-dim tensors.

        Keys are ``"<Module>/<stat>"`` (``"<Module>.<path>/<stat>"`` when the chain has several
        modules of that class), e.g. ``{"ClipNorm/norm": tensor(3.2), "ClipNorm/factor":
        tensor(0.31), "ClipNorm/clipped": tensor(1.)}``. Values stay on the device and are
        computed without a host sync; call ``.item()`` (or pass them to your logger) when you
        log. Norm-based clipping modules always record; elementwise ones (``ClipValue`` and
        the like) record only with ``Modular(..., full_stats=True)``, since counting clipped
        elements costs a pass over the data.

        Example:
            >>> import torch, torchzero as tz
            >>> w = torch.nn.Parameter(torch.zeros(2))
            >>> opt = tz.Modular([w], tz.m.ClipNorm(1.0, dim="global"), tz.m.LR(0.1))
            >>> w.grad = torch.tensor([3.0, 4.0]); opt.step()
            >>> {k: round(v.item(), 3) for k, v in opt.stats().items()}
            {'ClipNorm/norm': 5.0, 'ClipNorm/factor': 0.2, 'ClipNorm/clipped': 1.0}
        """
        named = [(path, m) for path, m in self.chain.named_modules() if path]
        counts: dict[str, int] = {}
        for _, m in named:
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
        out: dict[str, Tensor] = {}
        for path, m in named:
            name = type(m).__name__
            prefix = name if counts[name] == 1 else f"{name}.{path}"
            for k, v in m.stats().items():
                out[f"{prefix}/{k}"] = v
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` layout: ``{"state": {index: {"<path>.<key>": value}}, "param_groups": [...]}``
        plus ``"global_state"``: ``{"<path>": {...}}`` for state that is not per parameter.

        The global state is also under the key ``"global_state"`` of the first param group (the
        same dict), because ``torch.distributed.checkpoint`` keeps only ``"state"`` and
        ``"param_groups"`` of an optimizer's state dict."""
        sd = super().state_dict()
        sd["global_state"] = {path: dict(m.global_state) for path, m in self.chain.named_modules() if m.global_state}
        if sd["param_groups"]:
            sd["param_groups"][0]["global_state"] = sd["global_state"]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state dict from :meth:`state_dict`; tensors keep their saved dtype and move to
        their parameter's device.

        Parameters may be referred to by index or by any other key that the saved param groups'
        ``"params"`` lists use (``torch.distributed.checkpoint`` uses parameter names), as in
        ``torch.optim``. The global state is read from ``"global_state"``, or else from the first
        param group (where ``torch.distributed.checkpoint`` keeps it)."""
        state_dict = dict(state_dict)
        groups = [dict(g) for g in state_dict["param_groups"]]
        in_group = groups[0].pop("global_state", None) if groups else None
        state_dict["param_groups"] = groups
        global_state = state_dict.pop("global_state", None)
        if global_state is None:
            global_state = in_group or {}
        # saved keys -> parameters, by position in the param groups (as torch.optim does)
        keys = [k for g in groups for k in g["params"]]
        # torch casts floating state to the parameter's dtype; keep the saved dtypes instead.
        saved = {k: dict(v) for k, v in state_dict["state"].items()}
        state_dict["state"] = {k: {} for k in saved}
        super().load_state_dict(state_dict)
        self.chain.reset()
        self.chain._unbind()
        for group in self.param_groups:
            self.chain._bind_group(group, [self._key(p) for p in group["params"]])
        index = [p for g in self.param_groups for p in g["params"]]
        position = {k: i for i, k in enumerate(keys)}
        view = _StateView(self)
        for i, flat in saved.items():
            p = index[position[i] if i in position else int(i)]
            view[p] = {k: (v.to(p.device) if isinstance(v, Tensor) else v) for k, v in flat.items()}  # keeps dtype
        modules = dict(self.chain.named_modules())
        for path, gs in global_state.items():
            if path not in modules:
                raise KeyError(f"Modular.load_state_dict: global state for module {path!r}, which this chain does not have")
            modules[path].global_state = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in gs.items()}
        self.state = view  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "param_groups": self.param_groups, "chain": self.chain, "_fused_plan": self._fused_plan, "_modules": self._modules, "_real": self._real, "_param_of": self._param_of, "_trailing_lr": self._trailing_lr, "_head": self._head, "nonfinite": self.nonfinite}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "chain" in state:  # unpickling / deepcopy; load_state_dict sets state itself
            self.state = _StateView(self)  # type: ignore[assignment]
