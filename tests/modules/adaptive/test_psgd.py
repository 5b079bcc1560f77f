"""PSGDKron against a transcription of the PSGD author's standalone Kron optimizer
(tests/reference/psgd.py) over 200 steps on a small CNN in float64 (a conv weight matricized, a
dense-dense matrix, dense-diagonal by max_skew, vectors, a 0-dim parameter), with the same random
draws; the preconditioner whitens; matricization; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import small_cnn, train_small_cnn
from reference.psgd import KronWhitenReference
from torchzero.functional.psgd import apply_preconditioner, fit_preconditioner_, init_factors, matricized_shape
from torchzero.functional.zeroth_order import sample_seed

F64 = torch.float64


def _net() -> torch.nn.Module:
    return small_cnn(3, 6)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    train_small_cnn(model, opt, steps)


def _gen(t: int, i: int) -> torch.Generator:
    return torch.Generator().manual_seed(sample_seed(0, t, i) % 2**63)


CASES = {
    "defaults": {},
    "nesterov-skew-probability": dict(max_skew=0.5, nesterov=True, update_probability=0.5, lr_preconditioner=0.2, beta_l=0.5),
    "max_size-clip-init": dict(max_size=8, max_amps=(1.0, 2.0), init_scale=0.5, momentum=0.8, damping=1e-6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_200_steps_match_the_authors_kron(case):
    kw = CASES[case]
    ref, ours = _net(), _net()
    opt_ref = KronWhitenReference(ref.parameters(), _gen, lr=1e-2, dtype=F64, subspace=32, relative_damping=2.0**-53, **{
        {"beta_l": "betaL"}.get(k, k): v for k, v in kw.items()
    })
    opt = tz.Modular(ours.parameters(), tz.m.PSGDKron(**kw, dtype="float64"), tz.m.LR(1e-2))
    _train(ref, opt_ref, 1)
    _train(ours, opt, 1)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    _train(ref, opt_ref, 199)
    _train(ours, opt, 199)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_the_fitted_preconditioner_whitens():
    """On updates G = A Z B with white Z, the fitted P_l G P_r has second moments near c I on
    both sides (the criterion's fixed point), where G itself is far from white. (With the
    default max_skew=1, a 5 x 4 matrix's longer side would get a diagonal factor, which can't
    whiten a correlated side.)"""
    torch.manual_seed(0)
    A = torch.randn(5, 5, dtype=F64) + 3 * torch.eye(5, dtype=F64)
    B = torch.randn(4, 4, dtype=F64) + 3 * torch.eye(4, dtype=F64)
    qs = init_factors((5, 4), 1.0, float("inf"), float("inf"), F64, torch.device("cpu"))  # both sides dense
    assert qs[0].ndim == qs[1].ndim == 2
    ls = [torch.zeros((), dtype=torch.float32) for _ in qs]
    gen = torch.Generator().manual_seed(0)
    for _ in range(3000):
        G = A @ torch.randn(5, 4, dtype=F64, generator=gen) @ B
        fit_preconditioner_(qs, ls, G, 0.1, 0.9, 1e-9, 2.0**-53, 32, gen)
    left, right, raw = torch.zeros(5, 5, dtype=F64), torch.zeros(4, 4, dtype=F64), torch.zeros(5, 5, dtype=F64)
    for _ in range(2000):
        G = A @ torch.randn(5, 4, dtype=F64, generator=gen) @ B
        h = apply_preconditioner(qs, G)
        left += h @ h.T
        right += h.T @ h
        raw += G @ G.T
    cond = lambda M: float(torch.linalg.cond(M))  # noqa: E731
    assert cond(left) < 3.0 and cond(right) < 3.0 and cond(raw) > 100


@pytest.mark.parametrize(("shape", "expected"), [
    ((4, 2, 3, 3), (8, 9)), ((1, 5, 1), (5,)), ((6, 4), (6, 4)), ((), ()), ((2, 3, 4), (6, 4)),
], ids=["conv", "singletons", "matrix", "scalar", "3-D"])
def test_matricized_shape(shape, expected):
    assert matricized_shape(shape) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr_preconditioner": 1.0}, "PSGDKron.*lr_preconditioner"),
        ({"init_scale": 0.0}, "PSGDKron.*init_scale"),
        ({"max_amps": (0.5, 10.0)}, r"PSGDKron.*max_amps\[0\]"),
        ({"max_amps": (2.0, 1.0)}, r"PSGDKron.*max_amps\[1\]"),
        ({"update_probability": 1.5}, "PSGDKron.*update_probability"),
        ({"dtype": "float16"}, "PSGDKron.*dtype"),
        ({"momentum": 1.0}, "PSGDKron.*momentum"),
    ],
    ids=["lr_preconditioner=1", "init_scale=0", "max_amps-rms<1", "max_amps-order", "probability>1", "dtype", "momentum=1"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.PSGDKron(**kwargs)


@pytest.mark.parametrize("shape", [(40, 7), (7, 40)], ids=["tall", "wide"])
def test_gram_norm_bound_equals_the_bound_of_the_formed_gram_matrix(shape):
    """The fit never forms F F^T for the larger side: its bound from F alone, with the same draws."""
    from torchzero.functional.psgd import gram_norm_lower_bound, norm_lower_bound

    F = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = gram_norm_lower_bound(F, 5, torch.Generator().manual_seed(3))
    b = norm_lower_bound(F @ F.T, 5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=1e-13, atol=0)
    assert b <= torch.linalg.matrix_norm(F @ F.T, 2) * (1 + 1e-12)  # a lower bound
    assert b >= 0.5 * torch.linalg.matrix_norm(F @ F.T, 2)


def test_a_fit_through_the_factor_equals_one_through_the_formed_gram_matrix(monkeypatch):
    """For a side larger than the other, (F F^T - o I) Q is computed as F (F^T Q) - o Q, and the
    norm bound from F: the same fit up to rounding as with the Gram matrix written out."""
    import torchzero.functional.psgd as P

    g = torch.Generator().manual_seed(0)
    Gs = [torch.randn(12, 5, generator=g, dtype=F64) for _ in range(6)]
    runs = []
    for through in (True, False):
        monkeypatch.setattr(P, "_through_factor", (lambda s, o: s > o) if through else (lambda s, o: False))
        qs = init_factors((12, 5), 1.0, float("inf"), float("inf"), F64, torch.device("cpu"))
        ls = [torch.zeros((), dtype=F64) for _ in qs]
        for t, G in enumerate(Gs):
            fit_preconditioner_(qs, ls, G, 0.3, 0.9, 1e-9, 2.0**-53, 4, torch.Generator().manual_seed(t))
        runs.append(qs + ls)
    assert not torch.equal(runs[0][0], runs[1][0])  # the two forms round differently: both ran
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
