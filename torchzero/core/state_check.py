"""Checks that the tensors a step hands to a kernel fit their parameters.

torch's foreach ops check their operands, but fused kernels (torch's ``_fused_adam_`` and
torchzero's CPU kernels) trust them: a state tensor with fewer elements than its parameter, or
of another dtype, makes them read and write out of bounds. A state can stop fitting its
parameter when the model changes after the optimizer made the state (``model.double()``,
``p.data = other``), when a state is written through ``opt.state[p]``, or when a gradient is
left over from before such a change. Every step checks, before any state changes:

- each gradient against its parameter (:func:`check_grads`, in ``Modular.step``);
- each state tensor a module declares shaped like the parameter (``"like_param"`` in its
  ``STATE_KEYS`` or ``OPTIONAL_STATE_KEYS``) against the parameter the module sees
  (:func:`check_states`, before the module's step and before the fused path).

A mismatch raises ``RuntimeError`` naming the module, the parameter (index, and name when
known), what was expected and what was found, and what to do.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

__all__ = ["check_grads", "check_states", "like_param_keys", "mismatch"]

#: ``describe(p) -> "parameter 3 ('fc.weight')"``; set by ``Modular`` on its state store.
Describe = Callable[[Tensor], str]


def _default_describe(p: Tensor) -> str:
    return f"a parameter of shape {tuple(p.shape)}"


def mismatch(t: Tensor, p: Tensor) -> str | None:
    """What differs between ``t`` and ``p`` among shape, dtype and device, or whether ``t``'s
    elements overlap in memory (an expanded tensor), which no in-place update can write; ``None``
    if ``t`` fits."""
    if t.shape != p.shape or t.dtype != p.dtype or t.device != p.device:
        return f"{tuple(t.shape)} {t.dtype} on {t.device}, but the parameter is {tuple(p.shape)} {p.dtype} on {p.device}"
    stride = t.stride()
    if stride != p.stride() and any(st == 0 and n > 1 for st, n in zip(stride, t.shape)):
        return f"an expanded tensor (strides {stride}) whose elements share memory; give it its own memory (.clone())"
    return None


def like_param_keys(module: Any) -> tuple[str, ...]:
    """The state keys ``module`` declares shaped like the parameter (``"like_param"`` in its
    ``STATE_KEYS`` or ``OPTIONAL_STATE_KEYS``)."""
    declared = {**module.STATE_KEYS, **module.OPTIONAL_STATE_KEYS}
    return tuple(k for k, kind in declared.items() if kind == "like_param")


_FIX = (
    "This happens when the model is changed after the optimizer made its state (model.double(), model.to(), "
    "p.data = ...) or when opt.state[p] is given tensors of another shape. To convert the state to the parameters' "
    "dtype and device, load it again: opt.load_state_dict(opt.state_dict()); otherwise create the optimizer anew."
)


def check_grads(params: Sequence[Tensor], grads: Sequence[Tensor], describe: Describe | None = None) -> None:
    """Raises ``RuntimeError`` if a gradient's shape, dtype or device differs from its parameter's."""
    for p, g in zip(params, grads):  # a plain loop: this runs for every tensor on every step
        if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
            who = (describe or _default_describe)(p)
            raise RuntimeError(
                f"Modular.step: the gradient of {who} is {tuple(g.shape)} {g.dtype} on {g.device}, but the parameter is "
                f"{tuple(p.shape)} {p.dtype} on {p.device}; nothing was changed. The gradient was probably left over "
                "from before the parameter was replaced: call opt.zero_grad() (or set p.grad = None) after changing "
                "a parameter, then compute the gradients again."
            )


def check_states(
    module: Any,
    path: str,
    params: Sequence[Tensor],
    states: Sequence[Any],
    keys: Sequence[str],
    describe: Describe | None = None,
) -> None:
    """Raises ``RuntimeError`` if a state tensor under one of ``keys`` doesn't fit its parameter.

    ``states`` are the module's views for ``params`` (a missing key is fine: the module makes
    it on its first step).
    """
    for key in keys:
        values = _values(states, key)
        if _fit(params, values):
            continue
        for p, t in zip(params, values):
            if t is _MISSING:
                continue
            if not isinstance(t, Tensor):
                why = f"a {type(t).__name__}, not a tensor"
            else:
                why = mismatch(t, p)  # type: ignore[assignment]
                if why is None:
                    continue
            who = (describe or _default_describe)(p)
            raise RuntimeError(
                f"{type(module).__name__} (module {path!r}): the state {key!r} of {who} is {why}; nothing was "
                f"changed. {_FIX}"
            )


def _fit(params: Sequence[Tensor], values: list[Any]) -> bool:
    """The common case, tested cheaply: every value a tensor of its parameter's shape, dtype and
    device, laid out like it (or missing)."""
    for p, t in zip(params, values):  # a plain loop: this runs for every tensor on every step
        if t is _MISSING:
            continue
        if type(t) is not Tensor or t.shape != p.shape or t.dtype != p.dtype or t.stride() != p.stride():
            return False
        if t.is_cpu:
            if not p.is_cpu:
                return False
        elif t.device != p.device:
            return False
    return True


_MISSING = object()


def _values(states: Sequence[Any], key: str) -> list[Any]:
    pss = getattr(states, "_pss", None)
    if pss is not None:  # a StateList: read the flat dicts directly
        full = f"{states._path}.{key}"  # type: ignore[attr-defined]
        return [dict.get(ps, full, _MISSING) for ps in pss]
    return [s.get(key, _MISSING) for s in states]
