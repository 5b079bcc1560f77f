"""``Muon``: momentum orthogonalized by Newton-Schulz, as torch.optim.Muon."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.transform import Context, Settings, States, Transform
from ...functional.orthogonalize import NS_COEFFICIENTS, NS_DTYPES, muon_direction
from ...utils.validation import check_bool
from ..momentum.ema import check_momentum_settings
from .orthogonalize import check_newton_schulz_settings

__all__ = ["Muon"]

_KEYS = ("momentum", "nesterov", "ns_steps", "ns_coefficients", "eps", "ns_dtype", "adjust_lr_fn")


class Muon(Transform):
    r"""Muon's direction: SGD momentum, orthogonalized by Newton-Schulz, scaled by the shape
    (:func:`~torchzero.functional.orthogonalize.muon_direction`):

    $$
    b \leftarrow \mu b + (1-\mu) g, \qquad
    M = \begin{cases} (1-\mu) g + \mu b & \text{nesterov} \\ b & \text{otherwise}\end{cases},
    \qquad u \leftarrow s(\text{rows}, \text{cols})\ \mathrm{NS}_k^{(a,b,c)}(M)
    $$

    where $\mathrm{NS}$ is the quintic Newton-Schulz iteration of
    :class:`~torchzero.modules.Orthogonalize` (``ns_steps`` $= k$, the norm clamped at ``eps``)
    run in ``ns_dtype``, and $s$ is $\sqrt{\max(1, \text{rows}/\text{cols})}$
    (``adjust_lr_fn=None`` or ``"original"``) or $0.2\sqrt{\max(\text{rows}, \text{cols})}$
    (``"match_rms_adamw"``, which lets Muon reuse AdamW's learning rate and weight decay).

    Followed by ``WeightDecay(wd)`` and ``LR(lr)`` it is ``torch.optim.Muon(lr=lr,
    weight_decay=wd, momentum=..., nesterov=..., ns_coefficients=..., eps=..., ns_steps=...,
    adjust_lr_fn=...)``: the same operations in the same order, with the iteration in bfloat16
    by default as torch's (torch's default ``weight_decay`` is 0.1; here the decay is the
    separate module, decoupled because it comes after). ``ns_dtype="float32"`` or
    ``"float64"`` runs the iteration in that precision instead.

    Shapes: a conv weight ``(out, in, kh, kw)`` is orthogonalized as the matrix
    ``(out, in * kh * kw)``, and its shape factor is that matrix's (the reference code takes
    ``kh / kw`` there, a quirk not copied). 0-D and 1-D tensors (biases, gains) get the
    momentum only; torch.optim.Muon refuses them. Muon is meant for hidden weight matrices: send
    embeddings, the head and 1-D parameters to Adam with :class:`~torchzero.modules.Split`
    (see the example).

    Args:
        momentum: $\mu$, in ``[0, 1)`` (default: ``0.95``).
        nesterov: orthogonalize the look-ahead $(1-\mu)g + \mu b$ (default: ``True``).
        ns_coefficients: $(a, b, c)$ (default: ``(3.4445, -4.7750, 2.0315)``).
        eps: the floor of $\|M\|_F$, ``>= 0`` (default: ``1e-7``).
        ns_steps: Newton-Schulz iterations, an int ``>= 1`` (default: ``5``).
        adjust_lr_fn: ``None`` (default), ``"original"`` or ``"match_rms_adamw"``.
        ns_dtype: ``"bfloat16"`` (default, torch's), ``"float32"``, ``"float64"``, or ``None``
            (float32, float64 for float64 parameters).

    Example:
        ``torch.optim.Muon(lr=0.02, weight_decay=0.01)`` on the weight matrices, AdamW on the rest:

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        >>> opt = tz.Modular(
        ...     model.parameters(),
        ...     tz.m.Split(
        ...         lambda p: p.ndim >= 2,
        ...         [tz.m.Muon(), tz.m.WeightDecay(1e-2), tz.m.LR(0.02)],
        ...         [tz.m.Adam(), tz.m.WeightDecay(1e-2), tz.m.LR(3e-4)],
        ...     ),
        ... )
        >>> model(torch.randn(4, 8)).pow(2).mean().backward(); opt.step()

    References:
        Jordan, K., Jin, Y., Boza, V., You, J., Cesista, F., Newhouse, L., & Bernstein, J.
        (2024). Muon: An optimizer for hidden layers in neural networks.
        https://kellerjordan.github.io/posts/muon/

        Liu, J., et al. (2025). Muon is scalable for LLM training. https://arxiv.org/abs/2502.16982
    """

    CAPABILITIES = Capabilities(fused_role="muon", fused_options=frozenset(_KEYS))
    WHOLE_TENSORS = True  # under FSDP2 each matrix is gathered whole (see Transform.WHOLE_TENSORS)

    STATE_KEYS = {"momentum_buffer": "like_param"}

    def __init__(
        self,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        ns_dtype: str | None = "bfloat16",
    ):
        coefs = tuple(ns_coefficients) if isinstance(ns_coefficients, list) else ns_coefficients
        super().__init__(dict(
            momentum=momentum, nesterov=nesterov, ns_coefficients=coefs, eps=eps, ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype,
        ))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        check_momentum_settings({k: s[k] for k in ("momentum",) if k in s}, "Muon")
        if "nesterov" in s:
            check_bool("nesterov", s["nesterov"], owner="Muon")
        check_newton_schulz_settings(s, "Muon")

    def fused_spec(self, s: Mapping[str, Any]) -> dict[str, Any]:
        """The settings of :func:`~torchzero.functional.orthogonalize.muon_step_` (the fused form
        of ``Muon [WeightDecay] LR``)."""
        return dict(
            momentum=float(s["momentum"]), nesterov=bool(s["nesterov"]), ns_steps=int(s["ns_steps"]),
            ns_coefficients=tuple(s["ns_coefficients"]), eps=float(s["eps"]), ns_dtype=NS_DTYPES[s["ns_dtype"]],
            adjust_lr_fn=s["adjust_lr_fn"],
        )

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"momentum_buffer": torch.zeros_like(tensor, memory_format=torch.preserve_format)}

    def apply_tensors_copy(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        """:meth:`apply_tensors` only reads the update and makes new tensors: handed the
        gradients themselves, it spares a copy of them."""
        return self.apply_tensors(tensors, states, settings, ctx)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> Sequence[Tensor]:
        out: list[Tensor] = list(tensors)
        bufs = states["momentum_buffer"]
        for (momentum, nesterov, ns_steps, coefs, eps, ns_dtype, fn), idx in settings.groups(*_KEYS):
            done = muon_direction(
                [tensors[i] for i in idx], [bufs[i] for i in idx], float(momentum), bool(nesterov), int(ns_steps),
                tuple(coefs), float(eps), NS_DTYPES[ns_dtype], fn,
            )
            for i, t in zip(idx, done):
                out[i] = t
        return out
