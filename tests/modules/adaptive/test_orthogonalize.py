"""Orthogonalize against a reference written from Muon's Newton-Schulz iteration, and its properties.

Jordan, K., et al. (2024). Muon: An optimizer for hidden layers in neural networks.
https://kellerjordan.github.io/posts/muon/
"""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads
from torchzero.functional.orthogonalize import newton_schulz, orthogonalize

A, B, C = 3.4445, -4.7750, 2.0315


def ref_newton_schulz(G: torch.Tensor, steps: int) -> torch.Tensor:
    """Muon's quintic iteration on one matrix, written out plainly (the norm clamped at 1e-7,
    as torch.optim.Muon does)."""
    X = G.clone()
    transposed = X.shape[0] > X.shape[1]
    if transposed:
        X = X.T
    X = X / max(X.norm(), 1e-7)
    for _ in range(steps):
        M = X @ X.T
        X = A * X + (B * M + C * M @ M) @ X
    return X.T if transposed else X


def ref_orthogonalize(u: torch.Tensor, steps: int = 5) -> torch.Tensor:
    if u.ndim < 2:
        return u
    return ref_newton_schulz(u.reshape(u.shape[0], -1), steps).reshape(u.shape)


SHAPES = ((6, 4), (4,), (), (3, 2, 2), (2, 5), (4, 6), (4, 6))


@pytest.mark.parametrize("ns_steps", [1, 5, 8], ids=lambda n: f"ns{n}")
def test_trajectory_matches_reference_500_steps(ns_steps):
    params = make_params(SHAPES, dtype=torch.float64)
    ref = [p.detach().clone() for p in params]
    opt = tz.Modular(params, tz.m.Orthogonalize(ns_steps), tz.m.LR(0.02))
    for s in range(500):
        set_grads(params, s)
        opt.step()
        with torch.no_grad():
            for q, p in zip(ref, params):
                q -= 0.02 * ref_orthogonalize(p.grad, ns_steps)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_param_groups_with_different_settings_match_reference():
    params = make_params(((6, 4), (4,), (3, 5), (2, 2, 2)), dtype=torch.float64)
    ref = [p.detach().clone() for p in params]
    opt = tz.Modular(
        [{"params": params[:2]}, {"params": params[2:], "lr": 0.01, "ns_steps": 2, "adjust_lr": True}],
        tz.m.Orthogonalize(),
        tz.m.LR(0.02),
    )
    for s in range(500):
        set_grads(params, s)
        opt.step()
        with torch.no_grad():
            for i, (q, p) in enumerate(zip(ref, params)):
                if i < 2:
                    q -= 0.02 * ref_orthogonalize(p.grad, 5)
                else:
                    rows = p.shape[0]
                    cols = p.numel() // rows
                    q -= 0.01 * max(1, rows / cols) ** 0.5 * ref_orthogonalize(p.grad, 2)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _scalar_ns(sigma: torch.Tensor, steps: int) -> torch.Tensor:
    for _ in range(steps):
        sigma = A * sigma + B * sigma**3 + C * sigma**5
    return sigma


@pytest.mark.parametrize("shape", [(8, 8), (16, 4), (4, 16), (1, 7), (7, 1)], ids=str)
def test_newton_schulz_keeps_singular_vectors_and_maps_singular_values(shape):
    """NS(G) = U phi(S / ||G||_F) V^T, phi the scalar quintic iterated: exactly what the iteration is."""
    G = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    expected = U @ torch.diag(_scalar_ns(S / max(G.norm(), 1e-7), 5)) @ Vh
    torch.testing.assert_close(newton_schulz(G, 5), expected, rtol=1e-9, atol=1e-10)
    sv = torch.linalg.svdvals(newton_schulz(G, 5))
    assert sv.min() > 0.6 and sv.max() < 1.25


def test_svd_method_is_exact_and_drops_null_directions():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(6, 4, generator=g, dtype=torch.float64)
    O = tz.apply_transform(tz.m.Orthogonalize(method="svd"), [G])[0]
    torch.testing.assert_close(O.T @ O, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-12)
    low_rank = torch.randn(6, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 4, generator=g, dtype=torch.float64)
    O = tz.apply_transform(tz.m.Orthogonalize(method="svd"), [low_rank])[0]
    torch.testing.assert_close(torch.linalg.svdvals(O), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-10)
    assert tz.apply_transform(tz.m.Orthogonalize(method="svd"), [torch.zeros(3, 2)])[0].abs().sum() == 0


def test_dual_norm_correction_scales_by_the_nuclear_norm():
    G = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    O = tz.apply_transform(tz.m.Orthogonalize(method="svd"), [G])[0]
    D = tz.apply_transform(tz.m.Orthogonalize(method="svd", dual_norm_correction=True), [G])[0]
    torch.testing.assert_close(D, torch.linalg.matrix_norm(G, ord="nuc") * O, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, factor", [((12, 3), 2.0), ((3, 12), 1.0), ((4, 4), 1.0), ((8, 1, 2), 2.0)], ids=str)
def test_adjust_lr_factor(shape, factor):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    O = tz.apply_transform(tz.m.Orthogonalize(), [G])[0]
    adj = tz.apply_transform(tz.m.Orthogonalize(adjust_lr=True), [G])[0]
    torch.testing.assert_close(adj, factor * O, rtol=1e-12, atol=0)


def test_low_dim_and_empty_tensors_pass_through_and_conv_weights_are_flattened():
    g = torch.Generator().manual_seed(3)
    bias, scalar, empty = torch.randn(5, generator=g), torch.randn((), generator=g), torch.zeros(3, 0)
    conv = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    out = orthogonalize([bias, scalar, empty, conv])
    assert out[0] is bias and out[1] is scalar and out[2] is empty
    torch.testing.assert_close(out[3], newton_schulz(conv.reshape(4, 18), 5).reshape(4, 2, 3, 3), rtol=1e-12, atol=1e-12)


def test_batched_equals_one_matrix_at_a_time_and_transpose_equivariance():
    g = torch.Generator().manual_seed(4)
    mats = [torch.randn(6, 3, generator=g) for _ in range(4)]
    together = orthogonalize(mats)
    for m, o in zip(mats, together):
        torch.testing.assert_close(o, newton_schulz(m, 5), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(newton_schulz(m.T, 5), o.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_low_precision_is_computed_in_float32(dtype):
    G = torch.randn(8, 5, generator=torch.Generator().manual_seed(5))
    out = orthogonalize([G.to(dtype)])[0]
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), newton_schulz(G.to(dtype).float(), 5), rtol=1e-2, atol=1e-2)


def test_scale_invariance():
    G = torch.randn(7, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(1e3 * G, 5), newton_schulz(G, 5), rtol=1e-6, atol=1e-8)


def test_newton_schulz_takes_any_number_of_batch_dims():
    G = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    out = newton_schulz(G, 5)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], ref_newton_schulz(G[i, j], 5), rtol=1e-10, atol=1e-12)
