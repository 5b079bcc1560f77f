"""Reference implementations of the clipping subpackage (written from the clipping semantics in docs/guide/clipping.md).

Written directly from docs/guide/clipping_semantics.md, one tensor at a time with plain Python loops, so the fast
multi-tensor implementation in ``torchzero`` can be checked against them. This module must stay
independent of ``torchzero``: it imports only ``torch`` and ``math``.

Conventions:

- Every function and ``step`` returns NEW tensors and never modifies its inputs.
- Scalars that steer control flow (the EMA norms, growth denominators) are Python floats
  (float64), so float64 inputs give float64-accurate references.

Spec ambiguities and the readings chosen here (each is repeated where it applies):

1. ``min_size`` and ``inverse_dims`` only apply to per-tensor groups; ``dim="global"`` is always
   one group of all elements (the semantics page nests ``min_size`` under "each tensor on its own").
2. A norm ``n`` leaves its slice unchanged unless ``n > 1e-12``. So a NaN norm (from finite input
   only possible for ``"std"``/``"var"`` of a single element) and a negative ``"sum"`` norm also
   leave the slice unchanged, matching "never NaN" and the literal "``n <= 1e-12``".
3. With per-parameter values (a list with one value per tensor) and ``dim="global"``,
   the value of the first tensor is used for the whole group.
4. The functions' returned per-tensor norms are a list aligned with the input: ``norms[i]`` is the
   keepdim norm tensor measured for ``grads[i]`` (0-dim for a 0-dim grad), or ``None`` when
   ``grads[i]`` is ``None`` or was left unchanged by the dims / ``min_size`` rule (nothing was
   measured). ``ref_normalize_grads`` returns ``(new_grads, norms)`` like ``ref_clip_grad_norm``.
5. Centralize with ``dim="global"``: 0-dim tensors are elements of the concatenated vector and
   are centred like every other element (the 0-dim exception is stated for per-tensor groups).
6. "if ``add``" / "if ``mul``" / "if ``max_decay``" in the growth rules mean "is not ``None``"
   (``add=0`` therefore forbids any growth). ``min_value`` reads the same way (0 is a no-op anyway).
7. ``ClipNormGrowth``: the first step's ``prev_norm = norm(u)`` is not clamped by ``min_value``
   (the semantics page clamps only the *new* ``prev_norm`` of later steps). Divisions by a zero
   ``prev_norm`` follow IEEE rules (x/0 = inf, 0/0 = nan) instead of raising.
8. ``ClipNormByEMA``/``NormalizeByEMA`` with ``tensorwise=False`` have no ``1e-6`` floor on
   ``allowed`` (the semantics page gives the floor for tensorwise only).
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "ORD_STRINGS",
    "NORM_EPS",
    "validate_ord",
    "ref_norm",
    "reduce_dims",
    "ref_global_norm",
    "ref_clip_value",
    "ref_clip_norm",
    "ref_normalize",
    "ref_centralize",
    "ref_clip_grad_norm",
    "ref_normalize_grads",
    "ref_clip_grad_value",
    "RefClipNormByEMA",
    "RefNormalizeByEMA",
    "RefClipValueByEMA",
    "RefClipValueGrowth",
    "RefClipNormGrowth",
]

#: string ords allowed by the semantics page
ORD_STRINGS: tuple[str, ...] = ("l0", "l1", "l2", "l3", "l4", "linf", "mad", "std", "var", "sum")
_LP_STRINGS: dict[str, float] = {"l0": 0.0, "l1": 1.0, "l2": 2.0, "l3": 3.0, "l4": 4.0, "linf": math.inf}

#: a norm must be strictly greater than this for its slice to be scaled
NORM_EPS = 1e-12

TensorListFn = Callable[[list[Tensor]], list[Tensor]]
Dim = int | Sequence[int] | str | None


# --------------------------------------------------------------------------------------------
# norms and norm groups
# --------------------------------------------------------------------------------------------
def validate_ord(ord: Any) -> float | str:
    """Returns ``ord`` as a float p or one of the ``"mad" "std" "var" "sum"`` strings.

    ``"l0".."l4", "linf"`` become ``0..4, inf``. Anything else raises ``ValueError``.
    """
    if isinstance(ord, Tensor) and ord.numel() == 1 and not ord.dtype.is_complex:
        ord = ord.item()
    if isinstance(ord, str):
        if ord in _LP_STRINGS:
            return _LP_STRINGS[ord]
        if ord in ORD_STRINGS:
            return ord
    elif isinstance(ord, (int, float)) and not isinstance(ord, bool):
        return float(ord)
    raise ValueError(f"Invalid ord {ord!r}: expected a number or one of {ORD_STRINGS}")


def ref_norm(x: Tensor, ord: Any, dims: tuple[int, ...] | None) -> Tensor:
    """Norm of ``x`` over ``dims`` (``None`` = all dims), keeping the reduced dims.

    A 0-dim ``x`` is treated as shape ``(1,)`` and gives a 0-dim result.
    Numbers follow ``torch.linalg.vector_norm``: ``inf`` = max|x|, ``-inf`` = min|x|,
    ``0`` = count of nonzeros, else ``sum(|x|^p)^(1/p)``. ``"mad"`` = mean|x|,
    ``"std"``/``"var"`` are unbiased, ``"sum"`` is the plain (signed) sum.
    """
    p = validate_ord(ord)
    if x.ndim == 0:
        return ref_norm(x.reshape(1), p, dims).reshape(())
    if dims is None:
        dims = tuple(range(x.ndim))
    dims = tuple(dims)

    if p == "mad":
        return x.abs().mean(dim=dims, keepdim=True)
    if p == "std":
        return x.std(dim=dims, keepdim=True, correction=1)
    if p == "var":
        return x.var(dim=dims, keepdim=True, correction=1)
    if p == "sum":
        return x.sum(dim=dims, keepdim=True)

    assert isinstance(p, float)
    a = x.abs()
    if p == math.inf:
        return a.amax(dim=dims, keepdim=True)
    if p == -math.inf:
        return a.amin(dim=dims, keepdim=True)
    if p == 0:
        return (x != 0).sum(dim=dims, keepdim=True).to(x.dtype)
    return a.pow(p).sum(dim=dims, keepdim=True).pow(1.0 / p)


def reduce_dims(t: Tensor, dim: int | Sequence[int] | None, inverse_dims: bool, min_size: int) -> tuple[int, ...] | None:
    """Dims of ``t`` to reduce for its per-tensor norm group, or ``None`` to leave ``t`` unchanged.

    A 0-dim ``t`` is treated as shape ``(1,)``. ``dim=None`` selects all dims; an int or a
    sequence selects the dims ``t`` has (negative ints count from the end, out-of-range ints are
    ignored). ``inverse_dims`` selects the complement. ``None`` is returned when no dims are left or
    the product of the reduced sizes is ``< min_size``. The result is sorted and duplicate-free.
    """
    if isinstance(dim, str):
        raise ValueError(f"reduce_dims handles per-tensor groups only, got dim={dim!r}")
    shape = tuple(t.shape) if t.ndim > 0 else (1,)
    ndim = len(shape)

    if dim is None:
        selected = set(range(ndim))
    else:
        requested = (dim,) if isinstance(dim, int) else tuple(dim)
        selected = set()
        for d in requested:
            if isinstance(d, bool) or not isinstance(d, int):
                raise TypeError(f"dims must be ints, got {d!r} in dim={dim!r}")
            if -ndim <= d < ndim:
                selected.add(d % ndim)

    if inverse_dims:
        selected = set(range(ndim)) - selected
    if len(selected) == 0:
        return None

    dims = tuple(sorted(selected))
    size = math.prod(shape[d] for d in dims)
    if size < min_size:
        return None
    return dims


def ref_global_norm(tensors: Sequence[Tensor], ord: Any) -> Tensor:
    """Norm of all ``tensors`` flattened and concatenated into one vector (0-dim result)."""
    if len(tensors) == 0:
        return torch.zeros(())
    vec = torch.cat([t.reshape(-1) for t in tensors])
    return ref_norm(vec, ord, None).reshape(())


def _per_tensor_values(value: Any, n: int, name: str) -> list[Any]:
    """Expands a scalar setting, or checks a list of per-tensor settings, to ``n`` values."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} values for {n} tensors")
        return list(value)
    return [value] * n


def _group_norms(
    tensors: Sequence[Tensor], ord: Any, dim: Dim, inverse_dims: bool, min_size: int
) -> list[Tensor | None]:
    """Per-tensor keepdim norms (``None`` = tensor left unchanged); for ``"global"`` every entry
    is the same 0-dim global norm (``min_size``/``inverse_dims`` ignored, reading 1)."""
    validate_ord(ord)
    if dim == "global":
        n = ref_global_norm(tensors, ord)
        return [n for _ in tensors]
    if isinstance(dim, str):
        raise ValueError(f"dim must be an int, a sequence of ints, None or 'global', got {dim!r}")
    norms: list[Tensor | None] = []
    for t in tensors:
        dims = reduce_dims(t, dim, inverse_dims, min_size)
        norms.append(None if dims is None else ref_norm(t, ord, dims))
    return norms


def _scale_by(t: Tensor, n: Tensor | None, factor: Callable[[Tensor], Tensor]) -> Tensor:
    """``t * factor(n)`` where ``n > 1e-12``, ``t`` elsewhere (also where ``n`` is NaN, reading 2)."""
    if n is None:
        return t.clone()
    ok = n > NORM_EPS
    safe_n = torch.where(ok, n, torch.ones_like(n))
    mul = torch.where(ok, factor(safe_n), torch.ones_like(n))
    return t * mul


# --------------------------------------------------------------------------------------------
# stateless transforms
# --------------------------------------------------------------------------------------------
def ref_clip_value(tensors: Sequence[Tensor], value: float | Sequence[float]) -> list[Tensor]:
    """``clamp(u, -value, value)`` per tensor; ``value`` may be one value per tensor."""
    values = _per_tensor_values(value, len(tensors), "value")
    return [torch.clamp(t, -v, v) for t, v in zip(tensors, values)]


def ref_clip_norm(
    tensors: Sequence[Tensor],
    max_norm: float | Sequence[float],
    ord: Any = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 1,
) -> list[Tensor]:
    """ClipNorm: per norm group ``u *= min(1, max_norm / n)``."""
    values = _per_tensor_values(max_norm, len(tensors), "max_norm")
    if dim == "global" and len(values) > 0:
        values = [values[0]] * len(values)  # reading 3
    norms = _group_norms(tensors, ord, dim, inverse_dims, min_size)
    return [
        _scale_by(t, n, lambda n, m=m: torch.clamp(m / n, max=1))
        for t, n, m in zip(tensors, norms, values)
    ]


def ref_normalize(
    tensors: Sequence[Tensor],
    norm_value: float | Sequence[float] = 1,
    ord: Any = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 1,
) -> list[Tensor]:
    """Normalize: per norm group ``u *= norm_value / n``."""
    values = _per_tensor_values(norm_value, len(tensors), "norm_value")
    if dim == "global" and len(values) > 0:
        values = [values[0]] * len(values)  # reading 3
    norms = _group_norms(tensors, ord, dim, inverse_dims, min_size)
    return [_scale_by(t, n, lambda n, v=v: v / n) for t, n, v in zip(tensors, norms, values)]


def ref_centralize(
    tensors: Sequence[Tensor],
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 2,
) -> list[Tensor]:
    """Centralize: per group ``u -= mean(u)``; 0-dim tensors are unchanged unless ``"global"``."""
    if dim == "global":
        if len(tensors) == 0:
            return []
        mean = torch.cat([t.reshape(-1) for t in tensors]).mean()  # reading 1 and 5
        return [t - mean for t in tensors]
    out: list[Tensor] = []
    for t in tensors:
        dims = None if t.ndim == 0 else reduce_dims(t, dim, inverse_dims, min_size)  # type: ignore[arg-type]
        out.append(t.clone() if dims is None else t - t.mean(dim=dims, keepdim=True))
    return out


# --------------------------------------------------------------------------------------------
# functions (reference versions return new grads instead of working in place)
# --------------------------------------------------------------------------------------------
def _present(grads: Sequence[Tensor | None]) -> list[int]:
    return [i for i, g in enumerate(grads) if g is not None]


def ref_clip_grad_norm(
    grads: Sequence[Tensor | None],
    max_norm: float | None,
    ord: Any = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 2,
    min_norm: float | None = None,
) -> tuple[list[Tensor | None], Tensor | list[Tensor | None]]:
    """``clip_grad_norm_``: per norm group ``g *= min(1, max_norm/n)`` (if ``max_norm`` is not None)
    then ``g *= max(1, min_norm/n)`` (if ``min_norm``), both with ``n`` measured before scaling.

    ``None`` grads are skipped. Returns ``(new_grads, norms)``: ``norms`` is a 0-dim tensor for
    ``"global"``, else a list aligned with ``grads`` (reading 4).
    """

    def factor(n: Tensor) -> Tensor:
        mul = torch.ones_like(n)
        if max_norm is not None:
            mul = mul * torch.clamp(max_norm / n, max=1)
        if min_norm:
            mul = mul * torch.clamp(min_norm / n, min=1)
        return mul

    return _apply_grad_fn(grads, ord, dim, inverse_dims, min_size, factor)


def ref_normalize_grads(
    grads: Sequence[Tensor | None],
    norm_value: float,
    ord: Any = 2,
    dim: Dim = None,
    inverse_dims: bool = False,
    min_size: int = 1,
) -> tuple[list[Tensor | None], Tensor | list[Tensor | None]]:
    """``normalize_grads_``: per norm group ``g *= norm_value / n``. Returns ``(new_grads, norms)``
    like :func:`ref_clip_grad_norm`."""
    return _apply_grad_fn(grads, ord, dim, inverse_dims, min_size, lambda n: norm_value / n)


def _apply_grad_fn(
    grads: Sequence[Tensor | None],
    ord: Any,
    dim: Dim,
    inverse_dims: bool,
    min_size: int,
    factor: Callable[[Tensor], Tensor],
) -> tuple[list[Tensor | None], Tensor | list[Tensor | None]]:
    idx = _present(grads)
    present: list[Tensor] = [grads[i] for i in idx]  # type: ignore[misc]
    norms = _group_norms(present, ord, dim, inverse_dims, min_size)

    new_grads: list[Tensor | None] = [None] * len(grads)
    all_norms: list[Tensor | None] = [None] * len(grads)
    for i, g, n in zip(idx, present, norms):
        new_grads[i] = _scale_by(g, n, factor)
        all_norms[i] = n

    if dim == "global":
        return new_grads, ref_global_norm(present, ord)
    return new_grads, all_norms


def ref_clip_grad_value(grads: Sequence[Tensor | None], value: float) -> list[Tensor | None]:
    """``clip_grad_value_``: ``g = clamp(g, -value, value)``; ``None`` grads stay ``None``."""
    return [None if g is None else torch.clamp(g, -value, value) for g in grads]


# --------------------------------------------------------------------------------------------
# stateful modules
# --------------------------------------------------------------------------------------------
def _flat_norm(tensors: Sequence[Tensor], ord: Any) -> float:
    """Norm of the given tensors as one vector, as a Python float."""
    return ref_global_norm(tensors, ord).item()


def _fdiv(a: float, b: float) -> float:
    """``a / b`` with IEEE semantics (``x/0 = ±inf``, ``0/0 = nan``) instead of raising."""
    return (torch.tensor(a, dtype=torch.float64) / b).item()


def _check_ema_init(ema_init: str) -> None:
    if ema_init not in ("zeros", "update"):
        raise ValueError(f"Invalid ema_init {ema_init!r}: expected 'zeros' or 'update'")


def _groups(n: int, tensorwise: bool) -> list[list[int]]:
    """Indices of the tensors in each group: one per tensor, or all in one group."""
    return [[i] for i in range(n)] if tensorwise else ([list(range(n))] if n > 0 else [])


class RefClipNormByEMA:
    """ClipNormByEMA: divides each group of ``u`` by ``max(norm(u) / max(e, eps), 1)``,
    where ``e`` is the (growth-limited) norm of an EMA of past updates."""

    NORMALIZE = False

    def __init__(
        self,
        beta: float = 0.99,
        ord: Any = 2,
        eps: float = 1e-6,
        tensorwise: bool = True,
        max_ema_growth: float | None = 1.5,
        ema_init: str = "zeros",
        inner: TensorListFn | None = None,
    ) -> None:
        validate_ord(ord)
        _check_ema_init(ema_init)
        self.beta, self.ord, self.eps = beta, ord, eps
        self.tensorwise, self.max_ema_growth, self.ema_init = tensorwise, max_ema_growth, ema_init
        self.inner = inner
        self.ema: list[Tensor] | None = None
        self.prev_e: list[float] | None = None  # one per group; None before the first step

    def step(self, tensors: list[Tensor]) -> list[Tensor]:
        """One optimizer step; returns the transformed tensors."""
        u = [t.clone() for t in tensors]
        if self.ema is None:
            self.ema = [t.clone() if self.ema_init == "update" else torch.zeros_like(t) for t in u]

        # 1. ema = beta * ema + (1 - beta) * u
        ema = [self.beta * e + (1 - self.beta) * t for e, t in zip(self.ema, u)]

        groups = _groups(len(u), self.tensorwise)
        new_prev: list[float] = []
        denoms: list[float] = []
        for g, idx in enumerate(groups):
            e = _flat_norm([ema[i] for i in idx], self.ord)

            # 2. limit the growth of the EMA norm
            if self.max_ema_growth is not None:
                prev = e if self.prev_e is None else self.prev_e[g]
                allowed = prev * self.max_ema_growth
                if self.tensorwise:
                    allowed = max(allowed, 1e-6)  # no floor for tensorwise=False (reading 8)
                if e > allowed:
                    for i in idx:
                        ema[i] = ema[i] * (allowed / e)
                    e = allowed
                new_prev.append(e)

            # 3. the denominator
            d = _flat_norm([u[i] for i in idx], self.ord) / max(e, self.eps)
            d = max(d, self.eps) if self.NORMALIZE else max(d, 1.0)
            denoms.append(d)

        self.ema = ema
        if self.max_ema_growth is not None:
            self.prev_e = new_prev

        # 4. u /= d (inner, if given, sees u as it arrived)
        out = self.inner([t.clone() for t in u]) if self.inner is not None else u
        result = [t.clone() for t in out]
        for idx, d in zip(groups, denoms):
            for i in idx:
                result[i] = out[i] / d
        return result


class RefNormalizeByEMA(RefClipNormByEMA):
    """NormalizeByEMA: like :class:`RefClipNormByEMA` but ``d = max(d, eps)``, so the norm of
    each group is set to the EMA norm ``e``."""

    NORMALIZE = True


class RefClipValueByEMA:
    """ClipValueByEMA: ``u = clamp(u, -c, c)`` with ``c`` an EMA of ``|u|`` (optionally
    transformed by ``ema_tfm`` applied to a copy)."""

    def __init__(
        self,
        beta: float = 0.99,
        ema_init: str = "zeros",
        ema_tfm: TensorListFn | None = None,
        inner: TensorListFn | None = None,
    ) -> None:
        _check_ema_init(ema_init)
        self.beta, self.ema_init, self.ema_tfm, self.inner = beta, ema_init, ema_tfm, inner
        self.ema: list[Tensor] | None = None

    def step(self, tensors: list[Tensor]) -> list[Tensor]:
        """One optimizer step; returns the transformed tensors."""
        u = [t.clone() for t in tensors]
        if self.ema is None:
            self.ema = [t.abs() if self.ema_init == "update" else torch.zeros_like(t) for t in u]
        self.ema = [self.beta * e + (1 - self.beta) * t.abs() for e, t in zip(self.ema, u)]

        c = [e.clone() for e in self.ema]
        if self.ema_tfm is not None:
            c = self.ema_tfm(c)

        out = self.inner([t.clone() for t in u]) if self.inner is not None else u
        return [torch.clamp(t, -ci, ci) for t, ci in zip(out, c)]


class RefClipValueGrowth:
    """ClipValueGrowth: limits elementwise growth of ``|u|`` relative to the previous (clipped)
    update, additively (``add``) and/or multiplicatively (``mul``)."""

    def __init__(
        self,
        add: float | None = None,
        mul: float | None = 1.5,
        min_value: float | None = 1e-4,
        max_decay: float | None = 2,
    ) -> None:
        self.add, self.mul, self.min_value, self.max_decay = add, mul, min_value, max_decay
        self.prev: list[Tensor] | None = None

    def _ratio(self, t: Tensor, prev: Tensor) -> Tensor:
        """``r = max(|u| / pm, 1e-8)`` with ``pm = |prev|`` clamped below at ``min_value``."""
        pm = prev.abs()
        if self.min_value is not None:
            pm = torch.clamp(pm, min=self.min_value)
        return torch.clamp(t.abs() / pm, min=1e-8)

    def step(self, tensors: list[Tensor]) -> list[Tensor]:
        """One optimizer step; returns the transformed tensors."""
        if self.add is None and self.mul is None:
            return [t.clone() for t in tensors]
        if self.prev is None:
            self.prev = [t.clone() for t in tensors]
            return [t.clone() for t in tensors]

        out: list[Tensor] = []
        new_prev: list[Tensor] = []
        for t, prev in zip(tensors, self.prev):
            u = t.clone()
            # 1. additive bound (reading 6: add=0 forbids growth)
            if self.add is not None:
                g = torch.clamp(u.abs() - prev.abs(), min=0)
                u = torch.where(g > self.add, u - u.sign() * (g - self.add), u)
            # 2. multiplicative bound
            r: Tensor | None = None
            if self.mul is not None:
                r = self._ratio(u, prev)
                u = torch.where(r > self.mul, u / (r / self.mul), u)
            # 3. the next prev
            if self.max_decay is None:
                new_prev.append(u.clone())
            else:
                if r is None:
                    r = self._ratio(u, prev)  # u after step 1
                new_prev.append(torch.where(r < 1 / self.max_decay, prev / self.max_decay, u))
            out.append(u)
        self.prev = new_prev
        return out


class RefClipNormGrowth:
    """ClipNormGrowth: limits the growth of the norm of ``u`` (per tensor, or of all tensors as
    one vector) relative to the previous (clipped) norm."""

    def __init__(
        self,
        add: float | None = None,
        mul: float | None = 1.5,
        min_value: float | None = 1e-4,
        max_decay: float | None = 2,
        ord: Any = 2,
        parameterwise: bool = True,
    ) -> None:
        validate_ord(ord)
        self.add, self.mul, self.min_value, self.max_decay = add, mul, min_value, max_decay
        self.ord, self.parameterwise = ord, parameterwise
        self.prev_norm: list[float] | None = None  # one per group

    def step(self, tensors: list[Tensor]) -> list[Tensor]:
        """One optimizer step; returns the transformed tensors."""
        u = [t.clone() for t in tensors]
        if self.add is None and self.mul is None:
            return u
        groups = _groups(len(u), self.parameterwise)
        norms = [_flat_norm([u[i] for i in idx], self.ord) for idx in groups]
        if self.prev_norm is None:
            self.prev_norm = norms  # reading 7: not clamped by min_value
            return u

        new_prev: list[float] = []
        for idx, n, prev in zip(groups, norms, self.prev_norm):
            # 1. the denominator
            d = 1.0
            if self.add is not None and n > prev + self.add:
                d = _fdiv(n, prev + self.add)
            if self.mul is not None and n > prev * self.mul:
                d = max(d, _fdiv(n, prev * self.mul))
            if self.min_value is not None:
                d = max(d, self.min_value)
            # 2. the next prev_norm
            new = n / d
            if self.max_decay is not None and _fdiv(n, prev) < 1 / self.max_decay:
                new = prev / self.max_decay
            if self.min_value is not None:
                new = max(new, self.min_value)
            new_prev.append(new)
            # 3. u /= d
            for i in idx:
                u[i] = u[i] / d
        self.prev_norm = new_prev
        return u
