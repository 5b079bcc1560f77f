"""SOAP against a transcription of the SOAP authors' optimizer (tests/reference/soap.py) over 200
steps on a small CNN in float64 (conv, matrix, vector and 0-dim parameters; merged dims, dims
too large for a factor, 1-D factors or not), the first step exactly; the projection's algebra;
checkpoint checks; errors."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import small_cnn, train_small_cnn
from reference.soap import SOAPReference
from torchzero.functional.soap import eigenbases, merged_shape, project, project_back, update_factors_

F64 = torch.float64


def _net() -> torch.nn.Module:
    return small_cnn(4, 12)  # factors of full rank within the comparison's steps


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    train_small_cnn(model, opt, steps)


# (torchzero's SOAP settings) -> the authors' names. A factor with (near-)equal eigenvalues
# (rank-deficient: a vector's after fewer steps than its length) orders its basis by rounding
# noise at each refresh, so two implementations that round differently part ways there; these
# cases keep the factors of the shared model full rank (vectors are compared alone, below).
CASES = {
    "authors-defaults": dict(precond_freq=10, merge_small=False, max_dim=10000, precondition_1d=False),
    "freq5-merged-max_dim20-betas": dict(beta1=0.9, beta2=0.99, shampoo_beta=0.9, precond_freq=5, merge_small=True, max_dim=20, precondition_1d=False, eps=1e-6),
    "freq4-max_dim10": dict(precond_freq=4, merge_small=False, max_dim=10, precondition_1d=False),
}
DEFAULTS = dict(beta1=0.95, beta2=0.95, shampoo_beta=0.95, precond_freq=10, merge_small=True, max_dim=2000, precondition_1d=True, eps=1e-8)


def _reference(model: torch.nn.Module, s: dict) -> SOAPReference:
    s = {**DEFAULTS, **s}
    return SOAPReference(
        model.parameters(), lr=3e-3, betas=(s["beta1"], s["beta2"]), shampoo_beta=s["shampoo_beta"], eps=s["eps"],
        precondition_frequency=s["precond_freq"], max_precond_dim=s["max_dim"], merge_dims=s["merge_small"],
        precondition_1d=s["precondition_1d"],
    )


@pytest.mark.parametrize("case", list(CASES))
def test_200_steps_match_the_authors_soap(case):
    ref, ours = _net(), _net()
    opt_ref, opt = _reference(ref, CASES[case]), tz.Modular(ours.parameters(), tz.m.SOAP(**CASES[case]), tz.m.LR(3e-3))
    _train(ref, opt_ref, 2)  # the first step builds the factors only: the second is the first update
    _train(ours, opt, 2)
    for a, b in zip(ours.parameters(), ref.parameters()):
        # (a rank-deficient factor's null space is rotated by rounding: 1e-13 there)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    _train(ref, opt_ref, 198)
    _train(ours, opt, 198)
    # the rounding differences (lr applied after the bias correction here, folded into it
    # there) grow slowly: about 1e-9 relative after 200 steps
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shape", [(7,), ()], ids=["vector", "0-dim"])
def test_a_preconditioned_vector_matches_the_authors_soap(shape):
    torch.manual_seed(0)
    w0 = torch.randn(shape, dtype=F64)
    a, b = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    ref = SOAPReference([a], lr=1e-2, precondition_frequency=3, max_precond_dim=20, merge_dims=True, precondition_1d=True)
    opt = tz.Modular([b], tz.m.SOAP(precond_freq=3, max_dim=20), tz.m.LR(1e-2))
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        grad = torch.randn(shape, generator=g, dtype=F64) + a.detach()
        a.grad, b.grad = grad.clone(), grad.clone()
        ref.step()
        opt.step()
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)


def test_the_first_step_leaves_the_parameters_unchanged():
    model = _net()
    start = [p.detach().clone() for p in model.parameters()]
    opt = tz.Modular(model.parameters(), tz.m.SOAP(), tz.m.LR(1.0))
    _train(model, opt, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), start))


@pytest.mark.parametrize(("shape", "max_dim", "expected"), [
    ((128, 64, 3, 3), 2000, (128, 576)),
    ((4, 2, 3, 3), 2000, (72,)),
    ((3000, 5), 2000, (3000, 5)),
    ((10,), 2000, (10,)),
    ((), 2000, (1,)),
], ids=["conv", "small-conv", "large-dim", "vector", "scalar"])
def test_merged_shape(shape, max_dim, expected):
    assert merged_shape(shape, max_dim) == expected


def test_projection_is_an_orthogonal_change_of_basis():
    """project_back(project(X)) = X, and project of a matrix is Q_L^T X Q_R."""
    X = torch.randn(5, 7, dtype=F64)
    factors = [torch.zeros(5, 5, dtype=F64), torch.zeros(7, 7, dtype=F64)]
    update_factors_(factors, torch.randn(5, 7, dtype=F64), 0.0)
    qs = eigenbases(factors)
    torch.testing.assert_close(project(X, qs), qs[0].T @ X @ qs[1])
    torch.testing.assert_close(project_back(project(X, qs), qs), X)
    torch.testing.assert_close(project(X, [None, qs[1]]), X @ qs[1])  # no factor: identity along that dim


def test_a_factor_of_the_wrong_shape_in_a_loaded_state_is_refused_before_anything_changes():
    model = _net()
    opt = tz.Modular(model.parameters(), tz.m.SOAP(), tz.m.LR(1e-3))
    _train(model, opt, 2)
    sd = opt.state_dict()
    key = next(k for k in sd["state"][2] if k.endswith("GG_0"))  # conv.bias's factor (4, 4)
    sd["state"][2][key] = torch.zeros(3, 3, dtype=F64)
    twin = tz.Modular(model.parameters(), tz.m.SOAP(), tz.m.LR(1e-3))
    twin.load_state_dict(sd)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match=r"SOAP: the state 'GG_0' of a parameter of shape \(4,\) should be a \(4, 4\) tensor, got \(3, 3\)"):
        _train(model, twin, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta1": 1.0}, "SOAP.*beta1"),
        ({"shampoo_beta": -0.5}, "SOAP.*shampoo_beta"),
        ({"precond_freq": 0}, "SOAP.*precond_freq"),
        ({"max_dim": 0}, "SOAP.*max_dim"),
        ({"merge_small": "yes"}, "SOAP.*merge_small"),
        ({"decay": 1.0}, "SOAP.*decay"),
        ({"eps": -1.0}, "SOAP.*eps"),
    ],
    ids=["beta1=1", "shampoo_beta<0", "precond_freq=0", "max_dim=0", "merge_small-str", "decay=1", "eps<0"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.SOAP(**kwargs)
