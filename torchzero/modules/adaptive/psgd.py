"""``PSGDKron``: momentum whitened by PSGD's Kronecker-factored preconditioner (Li, 2018)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, TensorwiseTransform
from ...functional.psgd import PSGD_DTYPE_CONSTANTS, apply_preconditioner, fit_preconditioner_, init_factors, matricized_shape
from ...functional.zeroth_order import sample_seed
from ...utils.validation import check_beta, check_bool, check_choice, check_int, check_number

__all__ = ["PSGDKron"]

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def _update_now(t: int, probability: float, every: float = 1.0) -> bool:
    """Whether step ``t`` (from 0) falls on the schedule ``probability * every`` per step (the
    author's deterministic form: ``int(t p + 1) > int((t - 1) p + 1)``, true at step 0)."""
    p = probability * every
    if every == 1.0:
        return int(t * p + 1) > int((t - 1) * p + 1)
    return int(t * p) > int((t - 1) * p)


class PSGDKron(TensorwiseTransform):
    r"""PSGD with a Kronecker-factored whitening preconditioner ("Kron"), the author's
    ``KWNS4``: momentum, then a preconditioner $P = P_l \otimes P_r$ fitted so that the
    preconditioned momentum is white, then clipping of the result
    (:mod:`~torchzero.functional.psgd`).

    Per parameter, viewed as a matrix (singleton dims dropped; more than two dims split where
    closest to square) or a vector:

    $$
    \beta_t = \min\!\left(\tfrac{t}{t+1}, \mu\right), \quad
    m \leftarrow \beta_t m + (1-\beta_t) g, \quad
    M = \begin{cases} (1-\beta_t) g + \beta_t m & \text{nesterov} \\ m \end{cases}, \quad
    h = P_l\, M\, P_r
    $$

    with $P_s = Q_s^\top Q_s$ (dense) or $q_s^2$ (diagonal: a side with more than ``max_size``
    elements, or whose square exceeds ``max_skew`` times the tensor's size; vectors always).
    Before $h$ is formed, on the steps ``update_probability`` selects (every step at 1), the
    $Q$'s take one fitting step on $M$ with step size ``lr_preconditioner`` (the author's
    "Q0.5EQ1.5" rule, normalized by a running bound with ``beta_l``, damped by
    ``damping`` and random noise). Then $h$ is scaled to RMS at most ``max_amps[0]`` and clipped
    elementwise at ``max_amps[1]``. The $Q$'s are rebalanced every 100 fitting steps.

    Followed by ``LR(lr)`` it is the author's ``KWNS4(lr=lr, preconditioner_max_size=max_size,
    preconditioner_max_skew=max_skew, preconditioner_init_scale=init_scale,
    lr_preconditioner=..., betaL=beta_l, damping=..., momentum=..., nesterov=...,
    grad_clip_max_amps=max_amps, preconditioner_update_probability=...)`` with its module
    constants set for ``dtype`` (the recommended subspace dim and relative damping: 128 and
    $2^{-8}$ for bfloat16, 32 and $2^{-24}$ for float32), and with the noise drawn from a
    generator seeded by ``seed``, the step and the tensor's position (so a run is reproducible
    and resumes bitwise). ``WeightDecay(wd)`` after it is its decoupled weight decay.

    Args:
        max_size: the largest side with a dense factor (default: ``inf``).
        max_skew: a side $n$ is dense only if $n^2 \le$ ``max_skew`` $\cdot$ numel (default: ``1.0``).
        init_scale: the initial preconditioner is ``init_scale`` squared times the identity,
            ``> 0`` (default: ``1.0``).
        lr_preconditioner: the fitting step size, in ``(0, 1)`` (default: ``0.5``; the author
            anneals it to about 0.1).
        beta_l: the average of the bounds, in ``[0, 1)`` (default: ``0.9``).
        damping: the absolute damping noise, ``>= 0`` (default: ``1e-9``).
        momentum: $\mu$, in ``[0, 1)`` (default: ``0.9``).
        nesterov: precondition the look-ahead (default: ``False``).
        max_amps: (the largest RMS, the largest element) of $h$ (default: ``(2.0, 10.0)``).
        update_probability: the fraction of steps that fit the preconditioner, in ``[0, 1]``
            (default: ``1.0``; the author anneals it to 0.01-0.1).
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float64"``: the preconditioner's.
        seed: the seed of the damping noise and the norm bounds, an int (default: ``0``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        >>> opt = tz.Modular(model.parameters(), tz.m.PSGDKron(), tz.m.WeightDecay(1e-4), tz.m.LR(3e-4))

    References:
        Li, X.-L. (2018). Preconditioned stochastic gradient descent. IEEE TNNLS, 29(5).
        https://arxiv.org/abs/1512.04202

        Li, X.-L. (2024). Stochastic Hessian fittings with Lie groups.
        https://arxiv.org/abs/2402.11858
    """

    WHOLE_TENSORS = True  # under FSDP2 each matrix is gathered whole (see Transform.WHOLE_TENSORS)

    STATE_KEYS = {"step": "step", "ema": "like_param", "Q_0": "own_dtype", "L_0": "own_dtype"}
    # the factors are in the preconditioner's dtype, which loading must keep (a vector's diagonal
    # factor has the vector's shape, and torch.optim would cast it to the parameter's dtype)
    OPTIONAL_STATE_KEYS = {"Q_1": "own_dtype", "L_1": "own_dtype"}

    def __init__(
        self,
        max_size: float = float("inf"),
        max_skew: float = 1.0,
        init_scale: float = 1.0,
        lr_preconditioner: float = 0.5,
        beta_l: float = 0.9,
        damping: float = 1e-9,
        momentum: float = 0.9,
        nesterov: bool = False,
        max_amps: tuple[float, float] = (2.0, 10.0),
        update_probability: float = 1.0,
        dtype: str = "float32",
        seed: int = 0,
    ):
        super().__init__(dict(
            max_size=max_size, max_skew=max_skew, init_scale=init_scale, lr_preconditioner=lr_preconditioner, beta_l=beta_l,
            damping=damping, momentum=momentum, nesterov=nesterov,
            max_amps=tuple(max_amps) if isinstance(max_amps, list) else max_amps,
            update_probability=update_probability, dtype=dtype, seed=seed,
        ))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "PSGDKron"
        if "max_size" in s:
            check_number("max_size", s["max_size"], owner=o, min=0.0, allow_inf=True)
        if "max_skew" in s:
            check_number("max_skew", s["max_skew"], owner=o, min=0.0, allow_inf=True)
        if "init_scale" in s:
            check_number("init_scale", s["init_scale"], owner=o, min=0.0, min_inclusive=False)
        if "lr_preconditioner" in s:
            check_number("lr_preconditioner", s["lr_preconditioner"], owner=o, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
        for key in ("beta_l", "momentum"):
            if key in s:
                check_beta(key, s[key], owner=o)
        if "damping" in s:
            check_number("damping", s["damping"], owner=o, min=0.0)
        if "nesterov" in s:
            check_bool("nesterov", s["nesterov"], owner=o)
        if "max_amps" in s:
            a = s["max_amps"]
            if not isinstance(a, (tuple, list)) or len(a) != 2:
                raise TypeError(f"{o}: max_amps must be a pair (max RMS, max element), got {a!r:.80}")
            lo = check_number("max_amps[0]", a[0], owner=o, min=1.0, allow_inf=True)
            check_number("max_amps[1]", a[1], owner=o, min=lo, allow_inf=True)
        if "update_probability" in s:
            check_number("update_probability", s["update_probability"], owner=o, min=0.0, max=1.0)
        if "dtype" in s:
            check_choice("dtype", s["dtype"], tuple(_DTYPES), owner=o)
        if "seed" in s:
            check_int("seed", s["seed"], owner=o, min=0, max=2**63 - 1)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        dtype = _DTYPES[setting["dtype"]]
        shape = matricized_shape(tensor.shape)
        qs = init_factors(shape, float(setting["init_scale"]), float(setting["max_size"]), float(setting["max_skew"]), dtype, tensor.device)
        state: dict[str, Any] = {"ema": torch.zeros_like(tensor, memory_format=torch.contiguous_format)}
        for i, q in enumerate(qs):
            state[f"Q_{i}"] = q
            state[f"L_{i}"] = torch.zeros((), dtype=torch.float32, device=tensor.device)
        return state

    def apply_tensor(self, tensor: Tensor, state: dict[str, Any], setting: Mapping[str, Any], ctx: Context, i: int) -> Tensor:
        if tensor.numel() == 0:
            return tensor
        dtype = _DTYPES[setting["dtype"]]
        k, relative = PSGD_DTYPE_CONSTANTS[dtype]
        shape = matricized_shape(tensor.shape)
        t = int(state["step"]) - 1
        mu = float(setting["momentum"])
        beta = min(t / (t + 1), mu)
        ema = state["ema"]
        ema.lerp_(tensor, 1.0 - beta)
        M = tensor.lerp(ema, beta) if setting["nesterov"] else ema
        M = M.to(dtype).reshape(shape)
        qs = [state[f"Q_{j}"] for j in range(1 if len(shape) <= 1 else 2)]
        ls = [state[f"L_{j}"] for j in range(len(qs))]
        prob = float(setting["update_probability"])
        if _update_now(t, prob):
            gen = torch.Generator(device=tensor.device).manual_seed(sample_seed(int(setting["seed"]), t, i) % 2**63)
            fit_preconditioner_(
                qs, ls, M, float(setting["lr_preconditioner"]), float(setting["beta_l"]), float(setting["damping"]),
                relative, k, gen,
            )
        h = apply_preconditioner(qs, M)
        max_avg, max_el = (float(a) for a in setting["max_amps"])
        avg = torch.linalg.vector_norm(h) * h.numel() ** -0.5
        h = h * torch.clamp(max_avg / avg, max=1.0)
        h.clamp_(min=-max_el, max=max_el)
        if len(qs) == 2 and _update_now(t, prob, 0.01):  # rebalance the two sides' scales
            rho = (qs[1].abs().amax() / qs[0].abs().amax()).sqrt()
            qs[0].mul_(rho)
            qs[1].div_(rho)
        return h.reshape(tensor.shape).to(tensor.dtype)
