"""``Shampoo``: Kronecker-factored preconditioning by inverse roots (Gupta et al., 2018)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, TensorwiseTransform
from ...core.var import Var
from ...functional.shampoo import ROOT_METHODS, blocks, inverse_root, precondition
from ...functional.soap import factor_dims, merged_shape
from ...utils.validation import check_beta, check_bool, check_choice, check_int, check_number, check_optional_number
from ._factors import check_square_factors

__all__ = ["Shampoo"]

_HALF = (torch.float16, torch.bfloat16)


def _layout(t: Tensor, s: Mapping[str, Any]) -> tuple[tuple[int, ...], list[tuple[slice, ...]], list[list[bool]]]:
    """The merged shape, its blocks, and which dims of each block get a factor."""
    if t.ndim == 0 or t.numel() == 0:  # no dims (or nothing), no factors: the Adagrad fallback
        return (), [()], [[]]
    shape = merged_shape(t.shape, int(s["max_dim"])) if s["merge_small"] else tuple(t.shape)
    bs = blocks(shape, None if s["block_size"] is None else int(s["block_size"]))
    which = [factor_dims(tuple(sl.stop - sl.start for sl in b), int(s["max_dim"]), bool(s["precondition_1d"])) for b in bs]
    return shape, bs, which


class Shampoo(TensorwiseTransform):
    r"""Shampoo: the update is multiplied, along each of its dims, by an inverse root of that
    dim's accumulated second moment (:mod:`~torchzero.functional.shampoo`).

    Per parameter, its update $G$ with dims $d_1 \dots d_k$ (merged when ``merge_small``:
    consecutive dims while their product is at most ``max_dim``; cut into blocks of at most
    ``block_size`` along every dim when given, each block with its own factors):

    $$
    H_i \leftarrow \delta H_i + G_{(i)} G_{(i)}^\top \ \ (\text{or } H_i \leftarrow \beta H_i + (1-\beta) G_{(i)} G_{(i)}^\top),
    \qquad
    u = G \times_1 (H_1 + \epsilon I)^{-1/e} \cdots \times_k (H_k + \epsilon I)^{-1/e}
    $$

    with $\delta$ = ``decay`` (1 when ``None``), $\beta$ = ``beta``, $\epsilon$ = ``reg`` and
    $e$ = ``exp_override`` ($2k$, the paper's, when ``None``); for a matrix,
    $u = (H_L + \epsilon I)^{-1/e} G (H_R + \epsilon I)^{-1/e}$. The accumulators start at zero
    and take in the update as it reaches the module; the roots are recomputed every
    ``update_freq`` steps (from the first), by ``torch.linalg.eigh`` (``root_method="eigh"``,
    eigenvalues floored at $\max(\epsilon, \epsilon_{\text{dtype}}\lambda_{\max})$) or by the
    coupled Newton iteration (``"newton"``: matmuls only). Dims larger than ``max_dim`` get no
    factor (identity), 1-D tensors only with ``precondition_1d``; a tensor left with no factor at
    all (0-dim tensors among them) is divided by the root of its accumulated squares instead
    (Adagrad, $+$ ``adagrad_eps``).
    ``inner`` modules run between the accumulation and the preconditioning.

    Shampoo's steps vary in size; graft another method's step size onto its direction with
    :class:`~torchzero.modules.Graft` (see the example). With ``update_freq=1``, ``beta=None``
    and ``exp_override=None`` it is Algorithm 2 of the paper with $H_i^{(0)} = \epsilon I$.
    torchzero 0.3.x started the accumulators at $I$ and decayed the roots; both are fixed here.

    Args:
        decay: $\delta$, multiplies the accumulators before each addition, in ``(0, 1]`` or
            ``None`` (default: ``None``).
        beta: average the accumulators instead of summing them, in ``[0, 1)`` or ``None``
            (default: ``None``).
        reg: $\epsilon$ added to the accumulators' diagonal before the root, ``>= 0``
            (default: ``1e-12``).
        update_freq: steps between recomputations of the roots, an int ``>= 1`` (default: ``10``).
        exp_override: $e$, an int ``>= 1``, or ``None`` for $2k$ (default: ``2``).
        merge_small: merge consecutive small dims (default: ``True``).
        max_dim: the largest dim that gets a factor (default: ``2000``).
        precondition_1d: give 1-D tensors a factor too (default: ``True``).
        adagrad_eps: added to the root in the Adagrad fallback, ``>= 0`` (default: ``1e-8``).
        inner: modules applied between the accumulation and the preconditioning (default: ``None``).
        block_size: cut every dim into blocks of at most this size, an int ``>= 1`` or ``None``
            (default: ``None``: no blocking).
        root_method: ``"eigh"`` (default) or ``"newton"``.

    Example:
        Shampoo's direction with Adam's per-tensor step size:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        >>> opt = tz.Modular(model.parameters(), tz.m.Shampoo(), tz.m.Graft([tz.m.Grad(), tz.m.Adam()]), tz.m.LR(1e-3))

    References:
        Gupta, V., Koren, T., & Singer, Y. (2018). Shampoo: Preconditioned stochastic tensor
        optimization. ICML. https://arxiv.org/abs/1802.09568

        Anil, R., Gupta, V., Koren, T., Regan, K., & Singer, Y. (2020). Scalable second order
        optimization for deep learning (blocking, grafting). https://arxiv.org/abs/2002.09018
    """

    WHOLE_TENSORS = True  # under FSDP2 each matrix is gathered whole (see Transform.WHOLE_TENSORS)

    STATE_KEYS = {"step": "step"}
    OPTIONAL_STATE_KEYS = {"diagonal": "like_param"}

    def __init__(
        self,
        decay: float | None = None,
        beta: float | None = None,
        reg: float = 1e-12,
        update_freq: int = 10,
        exp_override: int | None = 2,
        merge_small: bool = True,
        max_dim: int = 2_000,
        precondition_1d: bool = True,
        adagrad_eps: float = 1e-8,
        inner: Any = None,
        *,
        block_size: int | None = None,
        root_method: str = "eigh",
    ):
        super().__init__(
            dict(
                decay=decay, beta=beta, reg=reg, update_freq=update_freq, exp_override=exp_override, merge_small=merge_small,
                max_dim=max_dim, precondition_1d=precondition_1d, adagrad_eps=adagrad_eps, block_size=block_size,
                root_method=root_method,
            ),
            inner=inner,
        )

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Shampoo"
        if "decay" in s:
            check_optional_number("decay", s["decay"], owner=o, min=0.0, max=1.0, min_inclusive=False)
        if "beta" in s and s["beta"] is not None:
            check_beta("beta", s["beta"], owner=o)
        for key in ("reg", "adagrad_eps"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0)
        if "update_freq" in s:
            check_int("update_freq", s["update_freq"], owner=o, min=1)
        for key in ("exp_override", "block_size"):
            if key in s and s[key] is not None:
                check_int(key, s[key], owner=o, min=1, max=2**16)
        if "max_dim" in s:
            check_int("max_dim", s["max_dim"], owner=o, min=1, max=2**16)
        for key in ("merge_small", "precondition_1d"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "root_method" in s:
            check_choice("root_method", s["root_method"], ROOT_METHODS, owner=o)

    # ------------------------------------------------------------------ checks before the step
    def step(self, var: Var) -> Var:
        # a loaded accumulator of the wrong shape would fail inside the step, after other states moved
        for p in var.params:
            st = self.state.get(p)
            if st is None or int(st.get("step", 0)) == 0:
                continue
            _, bs, which = _layout(p, self.settings(p))
            expected = [
                (f"{kind}_{b}_{d}", sl.stop - sl.start)
                for b, (block, has) in enumerate(zip(bs, which))
                for d, (sl, h) in enumerate(zip(block, has))
                if h
                for kind in ("H", "P")
            ]
            check_square_factors("Shampoo", p, st, expected, "max_dim, merge_small, block_size, precondition_1d")
        return super().step(var)

    # ------------------------------------------------------------------ the step
    def update_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> None:
        work = torch.float32 if tensor.dtype in _HALF else tensor.dtype
        shape, bs, which = _layout(tensor, setting)
        decay = None if setting["decay"] is None else float(setting["decay"])
        beta = None if setting["beta"] is None else float(setting["beta"])
        if not any(any(h) for h in which):  # no factor anywhere: Adagrad's diagonal
            if "diagonal" not in state:
                state["diagonal"] = torch.zeros_like(tensor, memory_format=torch.contiguous_format)
            acc = state["diagonal"]
            sq = (tensor * tensor).to(acc.dtype)
            if beta is not None:
                acc.lerp_(sq, 1 - beta)
            else:
                if decay is not None:
                    acc.mul_(decay)
                acc.add_(sq)
            return
        g = tensor.to(work).reshape(shape)
        recompute = (int(state["step"]) - 1) % int(setting["update_freq"]) == 0
        e = setting["exp_override"]
        for b, (block, has) in enumerate(zip(bs, which)):
            gb = g[block]
            p = float(e) if e is not None else 2.0 * gb.ndim
            for d, h in enumerate(has):
                if not h:
                    continue
                other = [x for x in range(gb.ndim) if x != d]
                outer = torch.tensordot(gb, gb, dims=(other, other))
                key = f"H_{b}_{d}"
                if key not in state:
                    state[key] = torch.zeros_like(outer)
                H = state[key]
                if beta is not None:
                    H.lerp_(outer, 1 - beta)
                else:
                    if decay is not None:
                        H.mul_(decay)
                    H.add_(outer)
                if recompute or f"P_{b}_{d}" not in state:
                    state[f"P_{b}_{d}"] = inverse_root(H, p, float(setting["reg"]), str(setting["root_method"]))

    def apply_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> Tensor:
        work = torch.float32 if tensor.dtype in _HALF else tensor.dtype
        if "diagonal" in state:  # (in float32 for half precision: an eps of 1e-8 is 0 in float16)
            acc = state["diagonal"].to(work)
            return (tensor.to(work) / (acc.sqrt().reshape(tensor.shape) + float(setting["adagrad_eps"]))).to(tensor.dtype)
        shape, bs, which = _layout(tensor, setting)
        x = tensor.to(work).reshape(shape)
        out = torch.empty_like(x) if len(bs) > 1 else None
        for b, (block, has) in enumerate(zip(bs, which)):
            roots = [state[f"P_{b}_{d}"] if h else None for d, h in enumerate(has)]
            y = precondition(x[block], roots)
            if out is None:
                return y.reshape(tensor.shape).to(tensor.dtype)
            out[block] = y
        assert out is not None
        return out.reshape(tensor.shape).to(tensor.dtype)
