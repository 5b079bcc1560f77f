"""``Modular``: a ``torch.optim.Optimizer`` that runs a chain of modules.

It owns the param groups, builds the :class:`~torchzero.core.var.Var` of each step, runs the
chain and moves the parameters by ``-update``.
"""
from __future__ import annotations

import inspect

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..functional.norms import finite_probe, global_norm
from ..utils.validation import check_choice
from .chain import Chain, Chainable, flatten_modules
from .checkpoint import RECORD_KEY, pack, prepare_load
from .fused import plan
from .module import Module
from .residuals import ResidualClosure
from .state import ModuleState, StateStore
from .state_check import check_grads
from .sync import host_bool
from .transform import Transform
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


def _as_params(params: Any) -> Any:
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    if isinstance(params, Tensor):
        raise TypeError(
            "Modular: params argument given to the optimizer should be an iterable of Tensors or dicts (e.g. [w] or "
            "model.parameters()), (name, tensor) pairs, or an nn.Module, but got a single tensor of shape "
            f"{tuple(params.shape)}: pass [tensor]"
        )
    if isinstance(params, Iterable) and not isinstance(params, (dict, str)):
        return list(params)
    raise TypeError(
        f"Modular: params must be an nn.Module, an iterable of tensors, of (name, tensor) pairs "
        f"or of param-group dicts, got {type(params).__name__}"
    )


def _check_tensor_lr(group: dict[str, Any]) -> None:
    lr = group.get("lr")
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError(f"Modular: Tensor lr must be 1-element, got shape {tuple(lr.shape)}")


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
    """Step guards (``Capabilities(guard=True)``) must come before every other module, at the top level."""
    seen_other = None
    for m in chain.modules:
        if m.CAPABILITIES.guard:
            if seen_other is not None:
                raise ValueError(
                    f"Modular: {type(m).__name__} must come before {type(seen_other).__name__}: a guard skips the whole "
                    f"step, which leaves the optimizer unchanged only if no module ran before it"
                )
        elif seen_other is None:
            seen_other = m
    top = {id(m) for m in chain.modules}
    for _, m in chain.named_modules():
        if m.CAPABILITIES.guard and id(m) not in top:
            raise ValueError(f"Modular: {type(m).__name__} is a step guard and must be at the top level of the chain, first")


def _check_estimator_first(chain: Chain) -> None:
    """A module that estimates the gradient from the closure (``Capabilities(estimates_grad=True)``)
    replaces the backward pass of the step: it must be the first module, at the top level."""
    for i, (path, m) in enumerate((p, m) for p, m in chain.named_modules() if p):
        if m.CAPABILITIES.estimates_grad and (i != 0 or m is not chain.modules[0]):
            raise ValueError(
                f"Modular: {type(m).__name__} estimates the gradient from evaluations of the closure, in place of "
                f"backward(), so it must be the first module of the chain, at the top level (it is at {path!r}); "
                f"put it first: tz.Modular(params, tz.m.{type(m).__name__}(...), ...)"
            )


def _check_eval_point_last(chain: Chain) -> None:
    """A module with an evaluation point (``Capabilities(eval_point=True)``, Schedule-Free) forms
    the final update, the move from one training point to the next: nothing may scale it."""
    for m in chain.modules[:-1]:
        if m.CAPABILITIES.eval_point:
            raise ValueError(
                f"Modular: {type(m).__name__} forms the final update (it takes lr itself), so it must be the last module "
                f"of the chain; put the modules after it ({', '.join(type(x).__name__ for x in chain.modules[chain.modules.index(m) + 1:])}) "
                "before it, and leave out LR"
            )


def _check_each_module_once(chain: Chain) -> None:
    """A module instance keeps one state and one set of settings: it can't be in two places."""
    seen: dict[int, str] = {}
    for path, m in chain.named_modules():
        if id(m) in seen:
            raise ValueError(
                f"Modular: the same {type(m).__name__} instance is at {seen[id(m)] or 'the top'!r} and at {path!r} of the chain; "
                "the two places would share one state and one set of settings. Create a separate instance for each "
                f"place (e.g. tz.m.{type(m).__name__}(...) twice)"
            )
        seen[id(m)] = path


class Evaluations:
    """The closure of a step, counting its calls: ``nfev`` all of them, ``ngev`` those with
    ``backward=True`` (gradient evaluations)."""

    __slots__ = ("closure", "nfev", "ngev", "takes_backward")

    def __init__(self, closure: Callable[..., Any]):
        self.closure, self.nfev, self.ngev = closure, 0, 0
        try:
            params = inspect.signature(closure).parameters.values()
            self.takes_backward = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)
        except (TypeError, ValueError):
            self.takes_backward = True

    def __call__(self, backward: bool = True) -> Any:
        if not self.takes_backward:
            if not backward:
                raise TypeError(
                    "a module of this chain evaluates the loss without gradients, calling closure(backward=False), but the "
                    "closure takes no argument; write it as `def closure(backward=True): ...` and call loss.backward() "
                    "only when backward is True"
                )
            self.nfev += 1
            self.ngev += 1
            return self.closure()
        self.nfev += 1
        self.ngev += bool(backward)
        return self.closure(backward)


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
        fused: ``None`` (default): run the chain in its fused form when it has one (one
            fused Adam pass: torchzero's CPU kernel or torch's fused Adam; Muon as
            torch.optim.Muon's loop; see the performance guide);
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
        self._evaluations: Evaluations | None = None  # the last step's closure, counting its calls
        #: Set when a termination module (``tz.m.TerminateAfterNSteps`` and the like) ended the
        #: optimization: later steps leave the parameters where they are. Set it to False to go on.
        self.terminated = False
        self.chain = Chain(*flat)
        _check_each_module_once(self.chain)
        defaults: dict[str, Any] = {}
        for m in self.chain.modules:  # top level only: nested modules keep their own values
            for key, value in m.published_settings().items():
                defaults.setdefault(key, value)
        top = {id(m) for m in self.chain.modules}
        _check_guards_first(self.chain)
        _check_estimator_first(self.chain)
        _check_eval_point_last(self.chain)
        for _, m in self.chain.named_modules():
            if id(m) not in top:
                m.hide_group_keys(frozenset(defaults))
        self._real: dict[Tensor, Tensor] = {}
        self._param_of: dict[Tensor, Tensor] = {}
        self._param_names: dict[Tensor, str] = {}
        super().__init__(_as_params(params), defaults)
        self.state = StateStore(path for path, _ in self.chain.named_modules() if path)  # type: ignore[assignment]
        self.state.describe = self._describe
        self._bind_state()
        self._modules = [m for _, m in self.chain.named_modules()]
        self._set_closure_kind()
        last = self.chain.modules[-1]
        self._trailing_lr = last if last.CAPABILITIES.fused_role == "lr" else None
        self._head = self.chain.modules[:-1] if self._trailing_lr is not None else self.chain.modules
        self._set_streams()
        for m in self._modules:
            m.full_stats = full_stats
        self._fused_plan = None if fused is False else plan(self.chain.modules)
        if fused and (
            self._fused_plan is None
            or any(self._fused_plan._specs(g, g["params"][0]) is None for g in self.param_groups)
        ):
            raise ValueError(
                "Modular: fused=True, but this chain has no fused form; fused chains are "
                "[ClipNorm/Normalize(dim='global')] Adam [WeightDecay] LR and Muon [WeightDecay] LR"
            )

    def _set_streams(self) -> None:
        """The module whose updates move the parameters one at a time (see :meth:`_run_chain`):
        the last before a trailing ``LR``, if it has a stream form; else ``None``."""
        tail = self._head[-1] if self._head else None
        self._streams = tail if isinstance(tail, Transform) and tail.has_stream_form() else None

    def _set_closure_kind(self) -> None:
        """What the chain makes of the closure: a gradient estimated by its first module
        (``_estimator``), residuals (``_residuals``; ``_keep_jacobian`` when a module uses $J$);
        and the modules with an evaluation point (``_eval_points``)."""
        head = self.chain.modules[0]
        self._estimator = head if head.CAPABILITIES.estimates_grad else None
        self._residuals = any(m.CAPABILITIES.residuals for m in self._modules)
        self._keep_jacobian = any(m.CAPABILITIES.uses_jacobian for m in self._modules)
        self._eval_points = [m for m in self._modules if m.CAPABILITIES.eval_point]

    def _bind_state(self) -> None:
        """Points every module's ``state`` at its part of ``self.state``."""
        for path, m in self.chain.named_modules():
            if path:
                m.state = ModuleState(self.state, path, self._param_of)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"Modular: a param group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        plain = [p[1] if isinstance(p, tuple) else p for p in params]
        seen: set[int] = set()
        keep = [i for i, p in enumerate(plain) if not (id(p) in seen or seen.add(id(p)))]  # type: ignore[func-returns-value]
        if len(keep) != len(plain):
            warnings.warn(
                "Modular: a parameter group with duplicate parameters was given; each is kept once (stepping a "
                "parameter twice per step is never meant). torch.optim warns about this too.",
                UserWarning,
                stacklevel=3,
            )
            params = [params[i] for i in keep]
        param_group = {**param_group, "params": params}  # a generator is consumed once: keep the list
        for m in self.chain.modules:  # a setting given by name fills its published tuple ("beta1" -> "betas")
            for setting, (key, i) in m.GROUP_ALIASES.items():
                if setting in param_group and key not in param_group:
                    packed = list(m.published_settings()[key])
                    for s2, (k2, j) in m.GROUP_ALIASES.items():
                        if k2 == key and s2 in param_group:
                            packed[j] = param_group[s2]
                    param_group[key] = tuple(packed)
        _check_tensor_lr(param_group)
        for name, value in list(param_group.items()):
            if name in ("params", "param_names", RECORD_KEY):
                continue
            for _, m in self.chain.named_modules():
                value = m.normalize_group_value(name, value)
                m.validate_group_value(name, value)
            param_group[name] = value  # stored as the modules compute with it
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        # a place for the chain's record in saved state dicts: torch.distributed.checkpoint
        # restores the param-group keys that the live groups have
        group[RECORD_KEY] = None
        for p, name in zip(group["params"], group.get("param_names", ())):
            self._param_names[p] = name
        for p in group["params"]:
            if p.is_complex() and p not in self._real:
                # modules see complex parameters as real views (..., 2), as torch.optim does
                view = torch.view_as_real(p.detach())
                self._real[p] = view
                self._param_of[view] = p
        self.chain._bind_group(group, [self._key(p) for p in group["params"]])

    def _describe(self, p: Tensor) -> str:
        """How error messages name parameter ``p`` (or the real view modules see of it):
        ``"parameter 3 ('fc.weight')"``, its index as ``state_dict()`` numbers it."""
        p = self._param_of.get(p, p)
        index = next((i for i, q in enumerate(q for g in self.param_groups for q in g["params"]) if q is p), None)
        name = self._param_names.get(p)
        return (f"parameter {index}" if index is not None else f"a parameter of shape {tuple(p.shape)}") + (
            f" ({name!r})" if name else ""
        )

    def _key(self, p: Tensor) -> Tensor:
        """The tensor modules see for parameter ``p`` (a real view of a complex parameter)."""
        return self._real.get(p, p) if self._real else p

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def step(self, closure: Callable[..., Any] | None = None) -> Any:  # type: ignore[override]
        """Performs one step.

        Args:
            closure: optional ``closure(backward=True)`` that zeroes the gradients, computes the
                loss and, if ``backward``, calls ``loss.backward()``. It is called once with
                ``backward=True`` before the modules run; modules that evaluate the loss
                elsewhere call it again: a line search once per trial step, with
                ``backward=True`` (``StrongWolfe``) or ``False`` (``Backtracking``), and puts
                the parameters back before the update is applied. ``opt.stats()["nfev"]`` and
                ``["ngev"]`` count the calls of the last step and those with ``backward``, as
                scipy's ``nfev``/``njev``. Plain zero-argument closures work for chains that
                don't call it again. Two kinds of chain read the closure differently: one whose
                first module estimates the gradient (``tz.m.SPSA``, ``tz.m.MeZO``, ...) makes
                no call of its own, only the module's ``closure(False)`` calls, and steps every
                parameter that requires a gradient; one with a least-squares module
                (``tz.m.GaussNewton``, ``tz.m.SumOfSquares``) takes a closure that returns
                residuals, and every module sees their sum of squares as the loss.

        Returns:
            The loss returned by the closure, or ``None``.

        The step is a pipeline: collect the gradients, apply the non-finite policy, run the
        fused form or the chain, apply the update to the parameters.
        """
        loss = None
        self._evaluations = None
        if self._eval_points and not self.training:
            raise RuntimeError(
                f"Modular.step: the optimizer is in eval mode ({type(self._eval_points[0]).__name__}: the parameters "
                "hold the averaged point, not the training point), so nothing was changed; call opt.train() before "
                "training again (and opt.eval() before evaluating or saving)"
            )
        if self._estimator is not None:
            return self._step_estimated(closure)
        if closure is not None:
            closure = self._evaluations = Evaluations(closure)
            if self._residuals:
                closure = ResidualClosure(closure, self._trainable(), self._keep_jacobian)
            with torch.enable_grad():
                loss = closure()
        if self.terminated:
            return loss
        groups = self._collect()
        if not groups:
            return loss
        for m in self._modules:
            m.clear_stats()
        params = [p for _, gp, _ in groups for p in gp]
        grads = [g for _, _, gg in groups for g in gg]
        check_grads(params, grads, self._describe)  # a gradient left from before a parameter changed
        meta = params[0].is_meta  # no values to check or to fuse over: the modules' ops run as torch.optim's do
        fused = self._fused_plan.prepare(groups) if self._fused_plan is not None and not meta else None
        var = Var(params=params, closure=closure, grad=grads, loss=loss)
        checked = self._check_finite(var, grads, loss, fused, meta)
        if checked is None:
            return loss  # skipped
        var, start, l2_norm = checked
        if fused is not None:
            self._fused_plan.run(fused, l2_norm)  # type: ignore[union-attr]
            return loss
        self._run_chain(var, start)
        return loss

    # ------------------------------------------------------------------ train / eval
    @property
    def training(self) -> bool:
        """Whether the parameters hold the training point (always, unless a module with an
        evaluation point, ``tz.m.ScheduleFree``, was put in eval mode by :meth:`eval`)."""
        return all(m.training for m in self._eval_points)

    def train(self, mode: bool = True) -> None:
        """Puts the parameters at the training point of modules that keep two points
        (``tz.m.ScheduleFree``: $y$); with ``mode=False`` the same as :meth:`eval`. A no-op for
        other chains. As the ``schedulefree`` package's optimizers, returns ``None``.
        """
        if not isinstance(mode, bool):
            raise TypeError(f"Modular.train: mode must be a bool, got {mode!r}")
        params = self._trainable()
        with torch.no_grad():
            for m in self._eval_points:
                m.set_training(mode, params)

    def eval(self) -> None:
        """Puts the parameters at the point to evaluate of modules that keep two points
        (``tz.m.ScheduleFree``: the average $x$). Call it before evaluating the model or saving
        it, and :meth:`train` before the next step. A no-op for other chains."""
        self.train(False)

    def _trainable(self) -> list[Tensor]:
        """Every parameter that requires a gradient, in order (complex ones as real views)."""
        return [self._key(p) for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _step_estimated(self, closure: Callable[..., Any] | None) -> Any:
        """A step whose first module estimates the gradient from closure evaluations: no
        ``backward()``; every parameter that requires a gradient takes part."""
        estimator = self._estimator
        assert estimator is not None
        if closure is None:
            raise RuntimeError(
                f"Modular: {type(estimator).__name__} estimates the gradient by evaluating the loss, so step() needs the "
                "closure: opt.step(closure), with `def closure(backward=True): return loss_fn(model(x), y)` "
                "(it is called with backward=False; no backward() is needed)"
            )
        closure = self._evaluations = Evaluations(closure)
        if self.terminated:
            return None
        params = self._trainable()
        if not params:
            return None
        for m in self._modules:
            m.clear_stats()
        before = dict(estimator.global_state)
        var = Var(params=params, closure=closure)
        var = estimator.step(var)
        if var.grad is None:
            raise RuntimeError(f"Modular: {type(estimator).__name__} did not form a gradient estimate")
        loss = var.loss
        if self.nonfinite != "propagate" and not self._finite(finite_probe(var.grad), loss):
            estimator.global_state = before  # the draws of a step that didn't happen
            estimator.clear_stats()
            return loss
        self._run_chain(var, 1)
        return loss

    def _collect(self) -> list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]:
        """``(group, params, grads)`` for each group with gradients: the parameters with a
        ``.grad`` (complex ones as the real views modules see)."""
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
        return groups

    def _check_finite(self, var: Var, grads: list[Tensor], loss: Any, fused: Any, meta: bool) -> tuple[Var, int, Tensor | None] | None:
        """The non-finite policy: ``None`` if the step is skipped, else ``(var, index of the first
        module still to run, the global L2 norm if it was computed)``.

        The check reads the gradients once, unless something reads them anyway: a fused L2 clip
        (its norm is the check) or a stateless first module that reports a probe.
        """
        if self.nonfinite == "propagate" or meta:
            return var, 0, None
        head = self._head
        start = 0
        l2_norm = check = None
        if fused is not None and self._fused_plan.scale is not None and self._fused_plan.norm_ord(fused) == 2:  # type: ignore[union-attr]
            l2_norm = check = global_norm(grads, 2.0)  # the fused clip needs this norm anyway
        elif fused is None and head and head[0].CAPABILITIES.probes_grad and head[0].target == "update" and head[0].has_copy_form():
            # a stateless first module reads the gradients anyway: run it first and check what
            # it measured (its norms, its means) instead of reading them once more
            var = head[0].step(var)
            check, var.grad_probe = var.grad_probe, None
            start = 1
        if check is None:
            check = finite_probe(grads)
        if not self._finite(check, loss):
            if start:
                head[0].clear_stats()  # the statistics of a step that didn't happen
            return None
        return var, start, l2_norm

    def _run_chain(self, var: Var, start: int) -> None:
        """Runs the modules before the trailing ``LR`` from ``start`` on and moves the
        parameters by the update, unless a module skipped it. A last module with a stream form
        (:meth:`Transform.apply_tensors_stream`) moves each parameter as its update is made."""
        head = self._head
        # an index, not an iterator: under torch.compile a graph break inside a module (a step
        # guard's host sync) resumes in this loop, and dynamo mishandles a resumed list iterator
        i = start
        while i < len(head):
            m = head[i]
            if i == len(head) - 1 and m is self._streams:
                updates = m.stream(var)
                if updates is not None:
                    self._apply_each(var.params, updates)
                    return
            var = m.step(var)
            if var.skip_update:
                if var.terminate:
                    self.terminated = True
                return
            i += 1
        update = var.update if var.update is not None else var.grad
        assert update is not None
        self._apply(var.params, update)

    def _apply(self, params: list[Tensor], update: list[Tensor]) -> None:
        """Moves the parameters by ``-update``; a trailing ``LR`` multiplies in the same pass."""
        if self._trailing_lr is None:
            torch._foreach_sub_(params, update)
        else:
            self._trailing_lr.step_params(params, update)

    def _apply_each(self, params: list[Tensor], updates: Iterator[Tensor]) -> None:
        """:meth:`_apply` for updates made one at a time: each parameter moves as its update
        comes, which is then dropped (one update held at a time)."""
        if self._trailing_lr is None:
            for p in params:
                p.sub_(next(updates))  # not a loop variable: it would hold the update while the next is made
        else:
            self._trailing_lr.step_params_each(params, updates)
        if next(updates, None) is not None:  # (and any code after the module's last yield runs)
            raise RuntimeError(f"Modular: {type(self._streams).__name__}.apply_tensors_stream made more updates than there are parameters")

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
        elif isinstance(loss, numbers.Real) and not math.isfinite(loss):  # a Python or NumPy number
            bad = torch.ones((), dtype=torch.bool)
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
        out: dict[str, Tensor] = {}
        evaluations = self._evaluations
        if evaluations is not None:  # the closure calls of the last step
            out["nfev"] = torch.tensor(float(evaluations.nfev))
            out["ngev"] = torch.tensor(float(evaluations.ngev))
        named = [(path, m) for path, m in self.chain.named_modules() if path]
        counts: dict[str, int] = {}
        for _, m in named:
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
        for path, m in named:
            name = type(m).__name__
            prefix = name if counts[name] == 1 else f"{name}.{path}"
            for k, v in m.stats().items():
                out[f"{prefix}/{k}"] = v
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s layout: ``{"state": {index: {"<path>.<key>": value}}, "param_groups":
        [...]}``. Each param group also carries, under ``"torchzero"``, the chain's fingerprint
        (module classes by path) and the state that is not per parameter (``global_state`` of
        each module): the same record in every group, so the dict is deterministic and
        ``torch.distributed.checkpoint`` keeps it. State-dict hooks run as in ``torch.optim``;
        post-hooks see the whole dict."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        sd = pack(self)
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, sd)
            if result is not None:
                sd = result
        return sd

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state dict from :meth:`state_dict`, all or nothing.

        The whole dict is validated before anything changes: the param groups (count, sizes,
        every setting value through the modules' validation), the chain's fingerprint (a state
        dict of another chain is refused), and every state entry against its parameter and
        module (shapes, missing or malformed entries). State tensors move to their parameter's
        device; those shaped like the parameter take its floating dtype, as ``torch.optim``
        casts them. On any error nothing is changed: the optimizer steps exactly as before.

        Parameters may be referred to by index or by any other key that the saved param groups'
        ``"params"`` lists use (``torch.distributed.checkpoint`` uses parameter names), as in
        ``torch.optim``; other keys of ``"state"`` are kept in ``self.state`` as they are.
        Load-state-dict pre-hooks may rewrite the dict (their result is loaded); post-hooks see
        the loaded state.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"Modular.load_state_dict: expected a dict, got {type(state_dict).__name__}; nothing was changed")
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        plan = prepare_load(self, state_dict)
        # validated: from here on nothing can fail half-way
        self.chain.reset()
        self.chain._unbind()
        self.param_groups = plan.param_groups
        for group in self.param_groups:
            self.chain._bind_group(group, [self._key(p) for p in group["params"]])
        self.state.clear()
        for k, v in plan.state.items():
            self.state[k] = v
        modules = dict(self.chain.named_modules())
        for path, gs in plan.global_state.items():
            modules[path].global_state = gs
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def __getstate__(self) -> dict[str, Any]:
        keep = ("defaults", "param_groups", "state", "chain", "_fused_plan", "_modules", "_real", "_param_of",
                "_param_names", "_trailing_lr", "_head", "nonfinite", "terminated")
        return {k: self.__dict__[k] for k in keep if k in self.__dict__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("terminated", False)
        self._set_closure_kind()
        self._set_streams()
        self._evaluations = None
        self.state.describe = self._describe
