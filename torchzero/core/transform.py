"""``Transform`` (multi-tensor) and ``TensorwiseTransform`` (one tensor at a time): the
module-author contract.

A transform is given the tensors of one step (update or gradient, decided by
:func:`~torchzero.core.target.apply_to_target`), one state dict and one settings mapping per
tensor, and a :class:`Context` with the rest. Per step it

1. creates the state of parameters that have none with :meth:`Transform.init_state`, and
   advances the step counters it declares (a ``"step"`` entry in ``STATE_KEYS``);
2. calls :meth:`Transform.update_tensors` (update the state from the tensors);
3. applies its ``inner`` modules to the tensors, if it has any;
4. returns :meth:`Transform.apply_tensors` (the transformed tensors).

Data passes from ``update_tensors`` to ``apply_tensors`` only through the states.
"""
from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..functional.norms import gather_whole, has_dtensor, scatter_like
from ..utils.validation import check_target
from .module import Module
from .settings import PerTensor, Settings
from .state import StateList
from .state_check import check_states, like_param_keys
from .steps import advance, new_step, step_values
from .target import apply_to_target
from .var import Var

__all__ = ["Transform", "TensorwiseTransform", "Context", "Settings", "States", "PerTensor"]

States = StateList
"""The states of the tensors of one step: ``states[i]`` is tensor ``i``'s dict,
``states["key"]`` the list of ``key``'s values."""


_METHODS = {
    "update_tensors": ("tensors", "states", "settings", "ctx"),
    "apply_tensors": ("tensors", "states", "settings", "ctx"),
    "apply_tensors_copy": ("tensors", "states", "settings", "ctx"),
    "update_tensor": ("tensor", "state", "setting", "ctx", "i"),
    "apply_tensor": ("tensor", "state", "setting", "ctx", "i"),
    "init_state": ("tensor", "setting"),
}


def _check_signatures(cls: type) -> None:
    """A subclass written for torchzero 0.3.x's six-argument methods gets a clear error when the
    class is made, not a TypeError inside a step."""
    for name, expected in _METHODS.items():
        fn = cls.__dict__.get(name)
        if fn is None or not callable(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            continue
        if len(params) != len(expected):
            got = ", ".join(p.name for p in params)
            raise TypeError(
                f"{cls.__name__}.{name}({got}): {name} takes ({', '.join(expected)}); params, grads and loss "
                f"come through ctx (ctx.params, ctx.grads, ctx.loss). See the guide 'Writing a module'."
            )


class Context:
    """What a transform may need besides its tensors, states and settings (most need none).

    Attributes:
        params: the parameters of the tensors, in order.
        new: positions of the tensors whose state :meth:`Transform.init_state` created this step.
    """

    __slots__ = ("var", "module", "states", "new")

    def __init__(self, var: Var, module: Transform, states: States, new: list[int]):
        self.var, self.module, self.states, self.new = var, module, states, new

    @property
    def params(self) -> list[Tensor]:
        return self.var.params

    @property
    def grads(self) -> list[Tensor]:
        """The gradients of the parameters (evaluating the closure if they are not known yet)."""
        return self.var.get_grad()

    @property
    def loss(self) -> Any:
        """The loss (evaluating the closure without backward if it is not known yet)."""
        return self.var.get_loss(backward=False)

    @property
    def closure(self) -> Any:
        """The closure passed to ``step``, or ``None``."""
        return self.var.closure

    @property
    def step(self) -> Any:
        """This module's step count for the tensors: one number if all are equal, else a list with
        one per tensor (0-dim tensors under ``torch.compile``). Needs a ``"step"`` state key."""
        steps = step_values(self.states[self.module._STEP_KEY], owner=self.module)
        return PerTensor(steps) if isinstance(steps, list) else steps

    def report_finite(self, probe: Tensor | None) -> None:
        """For a copy form (see :class:`~torchzero.core.capabilities.Capabilities`): a 0-dim
        tensor that is finite if and only if every element the module read is (``None``: can't
        tell), which spares ``Modular``'s non-finite check a read of the gradients."""
        self.var.grad_probe = probe


class Transform(Module):
    """A module that maps a list of tensors (one per parameter) to a list of tensors.

    Subclasses implement :meth:`apply_tensors` and, if they keep state, :meth:`init_state` and
    :meth:`update_tensors`.

    Args:
        defaults: per-parameter settings and their default values.
        target: ``"update"`` (default) transforms the update; ``"grad"`` transforms the gradient
            (exactly as "Clipping: exact semantics" in the docs defines it).
        uses_grad: evaluate the gradients (through the closure, if needed) before the module
            runs; ``ctx.grads`` does the same when it is read.
        uses_loss: evaluate the loss before the module runs; ``ctx.loss`` does the same when read.
        inner: modules applied to the tensors between :meth:`update_tensors` and
            :meth:`apply_tensors`.

    Example:
        Momentum in a few lines:

        >>> import torch, torchzero as tz
        >>> class Momentum(tz.Transform):
        ...     def __init__(self, beta: float = 0.9):
        ...         super().__init__({"beta": beta})
        ...     def init_state(self, tensor, setting):
        ...         return {"buf": torch.zeros_like(tensor)}
        ...     def apply_tensors(self, tensors, states, settings, ctx):
        ...         torch._foreach_lerp_(states["buf"], tensors, 1 - settings["beta"])
        ...         return [b.clone() for b in states["buf"]]
        >>> w = torch.nn.Parameter(torch.ones(3)); w.grad = torch.ones(3)
        >>> tz.Modular([w], Momentum(0.5)).step()
        >>> w
        Parameter containing:
        tensor([0.5000, 0.5000, 0.5000], requires_grad=True)
    """

    #: Whether the generic ``inner`` hook runs between update and apply. Modules that apply
    #: their ``inner`` modules to something else (Adam: its first moment) set this to False.
    INNER_ON_TENSORS: bool = True

    #: For modules whose math needs each tensor whole (matrix preconditioners: Muon, Shampoo,
    #: SOAP): a sharded tensor (an FSDP2 DTensor) is all-gathered before the module runs, the
    #: module sees and keeps state for the whole tensor (replicated on every rank), and each rank
    #: keeps its own shard of the result (no communication on the way back).
    WHOLE_TENSORS: bool = False

    # derived from STATE_KEYS / OPTIONAL_STATE_KEYS when the class is made:
    _LIKE_PARAM_KEYS: tuple[str, ...] = ()  # checked against the parameters before each step
    _STEP_KEY: str | None = None  # the step counter the base class creates and advances
    _READY_KEY: str | None = None  # a key every initialised state has
    _HAS_INIT: bool = False  # whether the class implements init_state

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_signatures(cls)
        cls._LIKE_PARAM_KEYS = like_param_keys(cls)
        cls._STEP_KEY = next((k for k, kind in cls.STATE_KEYS.items() if kind == "step"), None)
        cls._READY_KEY = next(iter(cls.STATE_KEYS), None)
        cls._HAS_INIT = cls.init_state is not Transform.init_state

    def __init__(
        self,
        defaults: Mapping[str, Any] | None = None,
        *,
        target: str = "update",
        uses_grad: bool = False,
        uses_loss: bool = False,
        inner: Any = None,
    ):
        self.target = check_target(target, owner=type(self).__name__)
        super().__init__(defaults)
        self.uses_grad = uses_grad
        self.uses_loss = uses_loss
        if inner is not None:
            self.set_child("inner", inner)

    # ----------------------------------------------------------------- what a module implements
    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        """The state of a parameter that has none yet (``tensor`` is its first update or
        gradient, ``setting`` its settings). Default: ``{}`` (no state beyond step counters)."""
        return {}

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        """Updates the states from the tensors as they arrive (before ``inner``). Default: nothing."""

    @abstractmethod
    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        """Returns the transformed tensors; may modify ``tensors`` in place and return them."""

    # ----------------------------------------------------------------- how the base runs it
    def begin(self, tensors: list[Tensor], var: Var) -> tuple[States, Settings, Context]:
        """Fetches the states and settings of ``var``'s parameters, checks the states still fit
        their parameters, creates missing states (:meth:`init_state`) and advances the step
        counters. Modules that route their ``inner`` modules elsewhere call it from
        :meth:`transform`."""
        params = var.params
        if self.uses_grad:
            var.get_grad()
        if self.uses_loss:
            var.get_loss(backward=False)
        states = self.state.many(params)
        keys = self._LIKE_PARAM_KEYS
        if keys:  # before anything changes: a state that no longer fits its parameter is an error
            check_states(self, self.state._path, params, states, keys, self.state.describe)
        settings = self.settings_list(params)
        new = self.start_states(tensors, states, settings)
        return states, settings, Context(var, self, states, new)

    def start_states(self, tensors: list[Tensor], states: States, settings: Settings) -> list[int]:
        """Creates the states that are empty (:meth:`init_state`, and a step counter if one is
        declared), then advances the step counters. Returns the positions of the new states."""
        new: list[int] = []
        step = self._STEP_KEY
        if not self._HAS_INIT and step is None:  # a stateless module, or one that makes its own
            return new
        # a key every made state has: declared, else learnt from the first state made
        ready = self._READY_KEY or self.__dict__.get("_init_key")
        if ready is None or not states.has_all(ready):
            new = [i for i, st in enumerate(states) if not st]
            for i in new:
                st = states[i]
                if step is not None:
                    st[step] = new_step()
                made = self.init_state(tensors[i], settings[i])
                for k, v in made.items():
                    st[k] = v
                if made and ready is None:
                    ready = self._init_key = next(iter(made))
        if step is not None:
            advance(states, step, owner=self)
        return new

    def transform(self, tensors: list[Tensor], var: Var, copy: bool = False) -> list[Tensor]:
        """update -> inner -> apply, on ``tensors`` (what :meth:`step` calls on the target);
        ``copy``: leave ``tensors`` unchanged (the copy form, no ``inner``)."""
        if self.WHOLE_TENSORS and has_dtensor(tensors):
            return scatter_like(self._transform(gather_whole(tensors), var, copy), tensors)
        return self._transform(tensors, var, copy)

    def _transform(self, tensors: list[Tensor], var: Var, copy: bool) -> list[Tensor]:
        states, settings, ctx = self.begin(tensors, var)
        self.update_tensors(tensors, states, settings, ctx)
        if copy:
            return list(self.apply_tensors_copy(tensors, states, settings, ctx))
        if self.INNER_ON_TENSORS:
            tensors = self.apply_inner(tensors, var)
        return list(self.apply_tensors(tensors, states, settings, ctx))

    def apply_inner(self, tensors: list[Tensor], var: Var) -> list[Tensor]:
        """Applies the ``inner`` child (if any) to ``tensors`` and returns its output."""
        return tensors if "inner" not in self.children else self.run_child("inner", tensors, var)

    def run_child(self, name: str, tensors: list[Tensor], var: Var) -> list[Tensor]:
        """Runs child ``name`` on ``tensors`` as its update and returns the child's update; what
        the child learned (a loss, gradients, a request to skip) comes back into ``var``."""
        child = self.children[name].step(var.child(tensors))
        var.absorb(child)
        return child.get_update()

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        fn_copy = (lambda tensors: self.transform(tensors, var, copy=True)) if self.has_copy_form() else None
        return apply_to_target(var, self.target, lambda tensors: self.transform(tensors, var), fn_copy)

    # ----------------------------------------------------------------- optional: performance
    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        """Optional, for speed only: :meth:`apply_tensors` that leaves ``tensors`` unchanged and
        returns new tensors (none of them one of ``tensors``).

        A module that implements it (and whose :meth:`update_tensors` only reads ``tensors``) is
        handed the gradients themselves when it is the first to form the update, instead of a
        copy made for :meth:`apply_tensors` to work on: one pass over the data instead of two.
        """
        raise NotImplementedError

    def has_copy_form(self) -> bool:
        """Whether this module implements :meth:`apply_tensors_copy` (and has no children)."""
        return type(self).apply_tensors_copy is not Transform.apply_tensors_copy and not self.children

    def apply_tensors_stream(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Iterator[Tensor]:
        """Optional, for memory and speed: :meth:`apply_tensors_copy` as an iterator, the
        tensors made one at a time in order.

        When the module ends the chain (at the top level, before a trailing ``LR`` if any, its
        target the update), ``Modular`` moves each parameter as soon as its update comes out and
        drops the update before the next one is made: the step holds one tensor's update at a
        time instead of all of them (the memory per step of ``torch.optim``'s single-tensor
        loops, whose temporaries are freed and reused). The iterator must be lazy in what it
        allocates, and all its state updates (:meth:`update_tensors`, and changes made while
        iterating) are as in :meth:`apply_tensors_copy`: the result is the same, bit for bit.
        """
        raise NotImplementedError

    def has_stream_form(self) -> bool:
        """Whether this module implements :meth:`apply_tensors_stream` (and has no children)."""
        return type(self).apply_tensors_stream is not Transform.apply_tensors_stream and not self.children

    def stream(self, var: Var) -> Iterator[Tensor] | None:
        """The update of ``var``'s tensors as an iterator (:meth:`apply_tensors_stream`), the
        states already advanced; ``None`` when it can't be streamed here (the gradient target,
        ``inner`` modules, whole-tensor gathering of sharded tensors, or under
        ``torch.compile``): then :meth:`step` runs instead. Reads the update, or the gradients
        if no module formed it yet, without changing them."""
        if (
            self.target != "update"
            or not self.has_stream_form()
            or not var.params
            or torch.compiler.is_compiling()
        ):
            return None
        tensors = var.update if var.update is not None else var.get_grad()
        if self.WHOLE_TENSORS and has_dtensor(tensors):
            return None
        states, settings, ctx = self.begin(tensors, var)
        self.update_tensors(tensors, states, settings, ctx)
        return iter(self.apply_tensors_stream(tensors, states, settings, ctx))

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.target == "update" else f"{s}, target={self.target!r}"


class TensorwiseTransform(Transform):
    """A :class:`Transform` written for one tensor at a time.

    Subclasses implement :meth:`apply_tensor` and optionally :meth:`update_tensor`; each gets
    the tensor, its state dict, its settings and the step's :class:`Context` with the tensor's
    position ``i`` (``ctx.params[i]`` is its parameter).
    """

    def update_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> None:
        """Updates ``state`` from ``tensor``. Default: nothing."""

    @abstractmethod
    def apply_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> Tensor:
        """Returns the transformed tensor (may modify ``tensor`` in place)."""

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        for i, (t, st, se) in enumerate(zip(tensors, states, settings)):
            self.update_tensor(t, st, se, ctx, i)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        return [self.apply_tensor(t, st, se, ctx, i) for i, (t, st, se) in enumerate(zip(tensors, states, settings))]
