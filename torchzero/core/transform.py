"""``Transform`` (multi-tensor) and ``TensorwiseTransform`` (one tensor at a time).

A transform turns tensors into tensors and knows nothing of targets: it is given the tensors
(update or gradient, decided by :func:`~torchzero.core.target.apply_to_target`), first updates its
state from them (:meth:`Transform.update_tensors`), then, if it has ``inner`` modules, they are
applied to the tensors, and finally :meth:`Transform.apply_tensors` returns the result.
Data passes from ``update_tensors`` to ``apply_tensors`` only through ``states``.
"""
from __future__ import annotations

from abc import abstractmethod
from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from ..utils.validation import check_target
from .module import Module
from .state_check import check_states, like_param_keys
from .target import apply_to_target
from .var import Var

__all__ = ["Transform", "TensorwiseTransform", "Settings", "States"]

Settings = Sequence[ChainMap[str, Any]]
States = Sequence[dict[str, Any]]


class Transform(Module):
    """A module that maps a list of tensors (one per parameter) to a list of tensors.

    Subclasses implement :meth:`apply_tensors` and, if they keep state, :meth:`update_tensors`.

    Args:
        defaults: per-parameter settings and their default values.
        target: ``"update"`` (default) transforms the update; ``"grad"`` transforms the gradient
            (exactly as "Clipping: exact semantics" in the docs defines it).
        uses_grad: pass the gradients to the methods (evaluating the closure if needed).
        uses_loss: pass the loss to the methods (evaluating the closure if needed).
        inner: modules applied to the tensors between :meth:`update_tensors` and
            :meth:`apply_tensors`.

    Example:
        A transform that scales the update by a per-parameter ``alpha``:

        >>> import torch, torchzero as tz
        >>> class Scale(tz.Transform):
        ...     def __init__(self, alpha: float = 1.0):
        ...         super().__init__({"alpha": alpha})
        ...     def apply_tensors(self, tensors, params, grads, loss, states, settings):
        ...         torch._foreach_mul_(tensors, [s["alpha"] for s in settings])
        ...         return tensors
        >>> w = torch.nn.Parameter(torch.ones(3)); w.grad = torch.ones(3)
        >>> tz.Modular([w], Scale(0.5)).step()
        >>> w
        Parameter containing:
        tensor([0.5000, 0.5000, 0.5000], requires_grad=True)
    """

    #: Whether the generic ``inner`` hook runs between update and apply. Modules that apply
    #: their ``inner`` modules to something else (Adam: its first moment) set this to False.
    INNER_ON_TENSORS: bool = True

    #: The state keys shaped like the parameter (from ``STATE_KEYS`` and ``OPTIONAL_STATE_KEYS``),
    #: checked against the parameters before each step (:mod:`torchzero.core.state_check`).
    _LIKE_PARAM_KEYS: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._LIKE_PARAM_KEYS = like_param_keys(cls)


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

    def update_tensors(
        self,
        tensors: list[Tensor],
        params: list[Tensor],
        grads: list[Tensor] | None,
        loss: Any,
        states: States,
        settings: Settings,
    ) -> None:
        """Updates the state from the tensors as they arrive. Default: nothing."""

    @abstractmethod
    def apply_tensors(
        self,
        tensors: list[Tensor],
        params: list[Tensor],
        grads: list[Tensor] | None,
        loss: Any,
        states: States,
        settings: Settings,
    ) -> Sequence[Tensor]:
        """Returns the transformed tensors; may modify ``tensors`` in place and return them."""

    def apply_tensors_copy(
        self,
        tensors: list[Tensor],
        params: list[Tensor],
        grads: list[Tensor] | None,
        loss: Any,
        states: States,
        settings: Settings,
    ) -> Sequence[Tensor]:
        """Optional: :meth:`apply_tensors` that leaves ``tensors`` unchanged and returns new tensors.

        A module that implements it (and whose :meth:`update_tensors` only reads ``tensors``) is
        handed the gradients themselves when it is the first to form the update, instead of a
        copy made for :meth:`apply_tensors` to work on: one pass over the data instead of two.
        No returned tensor may be one of ``tensors``.
        """
        raise NotImplementedError

    def record_grad_probe(self, probe: Tensor | None) -> None:
        """Reports, from :meth:`apply_tensors_copy`, a 0-dim tensor that is finite if and only if
        every element of the tensors it read is (``None``: can't tell for these settings).

        Built from what the module computes anyway (norms, means: NaN and inf propagate into
        them), it spares ``Modular``'s non-finite check a read of the gradients.
        """
        self._grad_probe = probe

    def take_grad_probe(self) -> Tensor | None:
        """The probe recorded on this step, once (``None`` if none was)."""
        probe, self._grad_probe = getattr(self, "_grad_probe", None), None
        return probe

    def has_copy_form(self) -> bool:
        """Whether this module implements :meth:`apply_tensors_copy` (and has no children)."""
        return type(self).apply_tensors_copy is not Transform.apply_tensors_copy and not self.children

    def apply_inner(self, tensors: list[Tensor], var: Var) -> list[Tensor]:
        """Applies the ``inner`` child (if any) to ``tensors`` and returns its output."""
        inner = self.children.get("inner")
        if inner is None:
            return tensors
        child = inner.step(var.child(tensors))
        var.absorb(child)
        return child.get_update()

    def context(self, var: Var) -> tuple[list[Tensor], list[Tensor] | None, Any, States, Settings]:
        """``(params, grads, loss, states, settings)`` of this step, as the methods receive them."""
        params = var.params
        grads = var.get_grad() if self.uses_grad else var.grad
        loss = var.get_loss(backward=False) if self.uses_loss else var.loss
        states = self.state.many(params)
        keys = self._LIKE_PARAM_KEYS
        if keys:  # before anything changes: a state that no longer fits its parameter is an error
            check_states(self, self.state._path, params, states, keys, self.state.describe)
        settings = self.settings_list(params)
        return params, grads, loss, states, settings

    def transform(self, tensors: list[Tensor], var: Var, copy: bool = False) -> list[Tensor]:
        """update -> inner -> apply, on ``tensors`` (what :meth:`step` calls on the target);
        ``copy``: leave ``tensors`` unchanged (:meth:`apply_tensors_copy`, no ``inner``).

        Modules that route their ``inner`` modules elsewhere override this, using :meth:`context`.
        """
        params, grads, loss, states, settings = self.context(var)
        self.update_tensors(tensors, params, grads, loss, states, settings)
        if copy:
            return list(self.apply_tensors_copy(tensors, params, grads, loss, states, settings))
        if self.INNER_ON_TENSORS:
            tensors = self.apply_inner(tensors, var)
        return list(self.apply_tensors(tensors, params, grads, loss, states, settings))

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        fn_copy = (lambda tensors: self.transform(tensors, var, copy=True)) if self.has_copy_form() else None
        return apply_to_target(var, self.target, lambda tensors: self.transform(tensors, var), fn_copy)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.target == "update" else f"{s}, target={self.target!r}"


class TensorwiseTransform(Transform):
    """A :class:`Transform` written for one tensor at a time.

    Subclasses implement :meth:`apply_tensor` and optionally :meth:`update_tensor`; each gets the
    tensor, its parameter, gradient (or None), the loss, its state dict and its settings.
    """

    def update_tensor(self, tensor: Tensor, param: Tensor, grad: Tensor | None, loss: Any, state: dict[str, Any], setting: Mapping[str, Any]) -> None:
        """Updates ``state`` from ``tensor``. Default: nothing."""

    @abstractmethod
    def apply_tensor(self, tensor: Tensor, param: Tensor, grad: Tensor | None, loss: Any, state: dict[str, Any], setting: Mapping[str, Any]) -> Tensor:
        """Returns the transformed tensor (may modify ``tensor`` in place)."""

    def update_tensors(self, tensors, params, grads, loss, states, settings) -> None:  # type: ignore[no-untyped-def]
        gs = grads if grads is not None else [None] * len(tensors)
        for t, p, g, st, se in zip(tensors, params, gs, states, settings):
            self.update_tensor(t, p, g, loss, st, se)

    def apply_tensors(self, tensors, params, grads, loss, states, settings):  # type: ignore[no-untyped-def]
        gs = grads if grads is not None else [None] * len(tensors)
        return [self.apply_tensor(t, p, g, loss, st, se) for t, p, g, st, se in zip(tensors, params, gs, states, settings)]
