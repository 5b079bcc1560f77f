"""``Orthogonalize``: Newton-Schulz orthogonalization of matrix updates, the core of Muon."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.orthogonalize import ORTHOGONALIZE_METHODS, orthogonalize
from ...utils.validation import MAX_ITERATIONS, check_bool, check_choice, check_int

__all__ = ["Orthogonalize"]

_KEYS = ("ns_steps", "method", "dual_norm_correction", "adjust_lr")


class Orthogonalize(Transform):
    r"""Replaces each matrix update by its orthogonalization $UV^\top$ (Muon's core step).

    A tensor with two or more dims is viewed as the matrix $G$ of shape
    ``(shape[0], numel // shape[0])`` (a conv weight ``(out, in, kh, kw)`` as
    ``(out, in * kh * kw)``). With the SVD $G = U \Sigma V^\top$, the update becomes
    $O \approx U V^\top$: the same singular vectors, all singular values set to 1, i.e. the
    steepest-descent direction under the spectral norm. With ``method="newton-schulz"`` it is
    computed by the quintic iteration of Muon,

    $$
    X_0 = \frac{G}{\|G\|_F + 10^{-7}}, \qquad A = X_k X_k^\top, \qquad
    X_{k+1} = a X_k + (b A + c A^2) X_k, \qquad (a, b, c) = (3.4445, -4.7750, 2.0315),
    $$

    run on the wide orientation of $G$ for ``ns_steps`` steps. These coefficients trade accuracy
    for speed on purpose: the singular values of the result lie roughly in $[0.7, 1.2]$ rather
    than at exactly 1 (``method="svd"`` computes $UV^\top$ exactly, slowly, dropping directions
    with numerically zero singular values). The iteration runs in float32 (float64 for float64
    updates) and matrices of the same shape are processed as one batch.

    Then, optionally,

    - ``dual_norm_correction``: $O \leftarrow \langle G, O \rangle_F\, O$, which is about
      $\|G\|_*\, O$ (the nuclear norm): the steepest-descent step under the spectral norm has
      this length;
    - ``adjust_lr``: $O \leftarrow \sqrt{\max(1, \text{rows}/\text{cols})}\; O$, the shape
      factor of the reference Muon implementation (not Moonlight's $0.2\sqrt{\max(\text{rows},
      \text{cols})}$), so tall matrices get proportionally larger updates.

    0-D and 1-D updates (biases, norm weights, scalars) and empty tensors pass through
    unchanged. Complex parameters reach modules as real views of shape ``(..., 2)``, so a
    complex ``(m, n)`` matrix is orthogonalized as the real ``(m, 2n)`` matrix of its real and
    imaginary parts (not as the complex polar factor). Muon orthogonalizes only the hidden layers' weight matrices and trains
    embeddings, heads, biases and gains with Adam; give those parameters a different chain.

    Args:
        ns_steps: Newton-Schulz iterations, an int in ``[1, 10_000]`` (default: ``5``).
        adjust_lr: multiply by $\sqrt{\max(1, \text{rows}/\text{cols})}$ (default: ``False``).
        dual_norm_correction: multiply by $\langle G, O \rangle_F$ (default: ``False``).
        method: ``"newton-schulz"`` (default) or ``"svd"``. The SVD synchronizes with the host
            on CUDA; Newton-Schulz does not.
        target: ``"update"`` (default) or ``"grad"``.

    Example:
        Orthogonalized gradient descent (Muon without momentum; Muon itself puts Nesterov
        momentum first: ``tz.m.NAG(0.95), tz.m.Orthogonalize(), tz.m.LR(0.02)``):

        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        >>> opt = tz.Modular(model.parameters(), tz.m.Orthogonalize(), tz.m.LR(2e-2))
        >>> model(torch.randn(4, 8)).sum().backward(); opt.step()

        The update of a matrix parameter then has all singular values near 1:

        >>> G = torch.randn(16, 8)
        >>> O = tz.apply_transform(tz.m.Orthogonalize(method="svd"), [G])[0]
        >>> torch.allclose(torch.linalg.svdvals(O), torch.ones(8), atol=1e-5)
        True

    References:
        Jordan, K., Jin, Y., Boza, V., You, J., Cesista, F., Newhouse, L., & Bernstein, J.
        (2024). Muon: An optimizer for hidden layers in neural networks.
        https://kellerjordan.github.io/posts/muon/

        Bernstein, J., & Newhouse, L. (2024). Old optimizer, new norm: an anthology
        (steepest descent under the spectral norm). https://arxiv.org/abs/2409.20325
    """

    def __init__(
        self,
        ns_steps: int = 5,
        adjust_lr: bool = False,
        dual_norm_correction: bool = False,
        method: str = "newton-schulz",
        target: str = "update",
    ):
        defaults = dict(ns_steps=ns_steps, adjust_lr=adjust_lr, dual_norm_correction=dual_norm_correction, method=method)
        super().__init__(defaults, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Orthogonalize"
        if "ns_steps" in s:
            check_int("ns_steps", s["ns_steps"], owner=o, min=1, max=MAX_ITERATIONS)
        for key in ("adjust_lr", "dual_norm_correction"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "method" in s:
            check_choice("method", s["method"], ORTHOGONALIZE_METHODS, owner=o)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        groups = settings.groups(*_KEYS)
        if len(groups) == 1:
            (ns_steps, method, dual, adjust), _ = groups[0]
            return orthogonalize(tensors, ns_steps, method, dual, adjust)
        out = list(tensors)
        for (ns_steps, method, dual, adjust), idx in groups:
            for i, o in zip(idx, orthogonalize([tensors[i] for i in idx], ns_steps, method, dual, adjust)):
                out[i] = o
        return out
