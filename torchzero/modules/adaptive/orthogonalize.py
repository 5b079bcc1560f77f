"""``Orthogonalize``: Newton-Schulz orthogonalization of matrix updates, the core of Muon."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.orthogonalize import ADJUST_LR_FNS, NS_COEFFICIENTS, NS_DTYPES, ORTHOGONALIZE_METHODS, orthogonalize
from ...utils.validation import MAX_ITERATIONS, check_bool, check_choice, check_int, check_number

__all__ = ["Orthogonalize", "check_newton_schulz_settings"]

_KEYS = ("ns_steps", "method", "dual_norm_correction", "adjust_lr", "ns_coefficients", "eps", "ns_dtype", "adjust_lr_fn")


def check_newton_schulz_settings(s: Mapping[str, Any], owner: str) -> None:
    """The Newton-Schulz settings Orthogonalize and Muon share, checked where present."""
    if "ns_steps" in s:
        check_int("ns_steps", s["ns_steps"], owner=owner, min=1, max=MAX_ITERATIONS)
    if "ns_coefficients" in s:
        c = s["ns_coefficients"]
        if not isinstance(c, (tuple, list)) or len(c) != 3:
            raise TypeError(f"{owner}: ns_coefficients must be three numbers (a, b, c), got {c!r:.80}")
        for i, x in enumerate(c):
            check_number(f"ns_coefficients[{i}]", x, owner=owner)
    if "eps" in s:
        check_number("eps", s["eps"], owner=owner, min=0.0)
    for key, choices in (("ns_dtype", tuple(NS_DTYPES)), ("adjust_lr_fn", ADJUST_LR_FNS)):
        if key in s and s[key] is not None:
            check_choice(key, s[key], [c for c in choices if c is not None], owner=owner)


class Orthogonalize(Transform):
    r"""Replaces each matrix update by its orthogonalization $UV^\top$ (Muon's core step).

    A tensor with two or more dims is viewed as the matrix $G$ of shape
    ``(shape[0], numel // shape[0])`` (a conv weight ``(out, in, kh, kw)`` as
    ``(out, in * kh * kw)``). With the SVD $G = U \Sigma V^\top$, the update becomes
    $O \approx U V^\top$: the same singular vectors, all singular values set to 1, i.e. the
    steepest-descent direction under the spectral norm. With ``method="newton-schulz"`` it is
    computed by the quintic iteration of Muon,

    $$
    X_0 = \frac{G}{\max(\|G\|_F, \epsilon)}, \qquad A = X_k X_k^\top, \qquad
    X_{k+1} = a X_k + (b A + c A^2) X_k, \qquad (a, b, c) = (3.4445, -4.7750, 2.0315),
    $$

    run on the wide orientation of $G$ for ``ns_steps`` steps (the norm is clamped at ``eps``
    rather than shifted by it, as torch.optim.Muon does). These coefficients trade accuracy
    for speed on purpose: the singular values of the result lie roughly in $[0.7, 1.2]$ rather
    than at exactly 1 (``method="svd"`` computes $UV^\top$ exactly, slowly, dropping directions
    with numerically zero singular values). The iteration runs in ``ns_dtype`` (by default float32,
    float64 for float64 updates); on accelerators, matrices of the same shape are processed as one batch.

    Then, optionally,

    - ``dual_norm_correction``: $O \leftarrow \langle G, O \rangle_F\, O$, which is about
      $\|G\|_*\, O$ (the nuclear norm): the steepest-descent step under the spectral norm has
      this length;
    - ``adjust_lr``: $O \leftarrow \sqrt{\max(1, \text{rows}/\text{cols})}\; O$, the shape
      factor of the reference Muon implementation, so tall matrices get proportionally larger
      updates; with ``adjust_lr_fn="match_rms_adamw"`` Moonlight's
      $0.2\sqrt{\max(\text{rows}, \text{cols})}$ instead.

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
        ns_coefficients: the quintic's $(a, b, c)$ (default: ``(3.4445, -4.7750, 2.0315)``).
        eps: the floor of $\|G\|_F$, ``>= 0`` (default: ``1e-7``).
        ns_dtype: the dtype of the iteration: ``None`` (default: float32, float64 for float64
            updates), ``"bfloat16"`` (torch.optim.Muon's and the reference's), ``"float32"`` or
            ``"float64"``. The result is returned in the update's dtype.
        adjust_lr_fn: the shape factor of ``adjust_lr``: ``None``/``"original"`` (default) or
            ``"match_rms_adamw"``.

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

    WHOLE_TENSORS = True  # under FSDP2 each matrix is gathered whole (see Transform.WHOLE_TENSORS)

    def __init__(
        self,
        ns_steps: int = 5,
        adjust_lr: bool = False,
        dual_norm_correction: bool = False,
        method: str = "newton-schulz",
        target: str = "update",
        *,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_dtype: str | None = None,
        adjust_lr_fn: str | None = None,
    ):
        defaults = dict(
            ns_steps=ns_steps, adjust_lr=adjust_lr, dual_norm_correction=dual_norm_correction, method=method,
            ns_coefficients=tuple(ns_coefficients) if isinstance(ns_coefficients, list) else ns_coefficients,
            eps=eps, ns_dtype=ns_dtype, adjust_lr_fn=adjust_lr_fn,
        )
        super().__init__(defaults, target=target)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = "Orthogonalize"
        check_newton_schulz_settings(s, o)
        for key in ("adjust_lr", "dual_norm_correction"):
            if key in s:
                check_bool(key, s[key], owner=o)
        if "method" in s:
            check_choice("method", s["method"], ORTHOGONALIZE_METHODS, owner=o)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        out = list(tensors)
        for (ns_steps, method, dual, adjust, coefs, eps, ns_dtype, fn), idx in settings.groups(*_KEYS):
            done = orthogonalize(
                [tensors[i] for i in idx], ns_steps, method, dual, adjust,
                ns_coefficients=tuple(coefs), eps=float(eps), ns_dtype=NS_DTYPES[ns_dtype], adjust_lr_fn=fn,
            )
            for i, o in zip(idx, done):
                out[i] = o
        return out
