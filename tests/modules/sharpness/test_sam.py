"""SAM and ASAM against transcriptions of the authors' reference algorithms
(tests/reference/sam.py) on a small model, the perturbation's optimality for every p, two
gradient evaluations per step, the parameters put back bit for bit, the SAM objective seen by a
line search after it, and the errors."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from reference.sam import asam_step, sam_step
from torchzero.functional.sam import dual_exponent, sam_perturbation

F64 = torch.float64


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(F64)


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 5, generator=g, dtype=F64), torch.randn(16, 3, generator=g, dtype=F64)) for _ in range(n)]


def _run_tz(model: torch.nn.Module, opt: tz.Modular, batches) -> list[float]:
    losses = []
    for x, y in batches:
        def closure(backward=True):
            loss = torch.nn.functional.mse_loss(model(x), y)
            if backward:
                opt.zero_grad()
                loss.backward()
            return loss

        losses.append(float(opt.step(closure)))
    return losses


def test_sam_matches_the_reference_over_150_steps():
    batches = _batches(150)
    ref, ours = _model(), _model()
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    ref_losses = [sam_step(ref, lambda x=x, y=y: torch.nn.functional.mse_loss(ref(x), y), base, 0.05) for x, y in batches]
    opt = tz.Modular(ours.parameters(), tz.m.SAM(0.05), tz.m.HeavyBall(0.9), tz.m.LR(0.1))
    losses = _run_tz(ours, opt, batches)
    assert losses[0] == ref_losses[0]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-11, atol=0)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)


def test_asam_matches_the_reference_with_biases_unscaled():
    """The reference scales weights only: biases get asam=False through their param group."""
    batches = _batches(150)
    ref, ours = _model(), _model()
    base = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for x, y in batches:
        asam_step(ref, lambda x=x, y=y: torch.nn.functional.mse_loss(ref(x), y), base, 0.5, 0.01)
    weights = [p for n, p in ours.named_parameters() if "weight" in n]
    biases = [p for n, p in ours.named_parameters() if "weight" not in n]
    opt = tz.Modular([{"params": weights}, {"params": biases, "asam": False}], tz.m.ASAM(0.5), tz.m.Adam(), tz.m.LR(1e-2))
    _run_tz(ours, opt, batches)
    # (our ordering of params differs from the model's: compare by identity)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", [1.5, 2.0, 3.0, math.inf], ids=["p=1.5", "p=2", "p=3", "p=inf"])
@pytest.mark.parametrize("adaptive", [False, True], ids=["SAM", "ASAM"])
def test_the_perturbation_maximizes_the_linearized_loss(p, adaptive):
    """Hölder: <g, e> <= ||T^-1 e||_p ||T g||_q, with equality at the maximizer on the sphere of
    radius rho; so <g, e> = rho ||Tg||_q and ||T^-1 e||_p = rho."""
    g = [torch.randn(4, 3, dtype=F64), torch.randn(5, dtype=F64)]
    w = [torch.randn(4, 3, dtype=F64), torch.randn(5, dtype=F64)]
    e = sam_perturbation(g, w, 0.3, p, 0.0, adaptive, 0.01)
    T = [x.abs() + 0.01 if adaptive else torch.ones_like(x) for x in w]
    q = dual_exponent(p)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    tg = flat([t * x for t, x in zip(T, g)])
    inv = flat([x / t for x, t in zip(e, T)])
    torch.testing.assert_close(torch.linalg.vector_norm(inv, p), torch.tensor(0.3, dtype=F64))
    torch.testing.assert_close(torch.dot(flat(g), flat(e)), 0.3 * torch.linalg.vector_norm(tg, q))


def test_two_gradient_evaluations_per_step_and_parameters_restored_exactly():
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    opt = tz.Modular(model.parameters(), tz.m.SAM(0.5), tz.m.LR(0.0))
    _run_tz(model, opt, _batches(3))
    assert opt.stats()["nfev"] == 2 and opt.stats()["ngev"] == 2
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), start))


def test_the_update_is_the_gradient_at_the_perturbed_point():
    model = _model()
    (x, y), = _batches(1)
    loss_fn = lambda: torch.nn.functional.mse_loss(model(x), y)  # noqa: E731
    params = list(model.parameters())
    g = torch.autograd.grad(loss_fn(), params)
    e = sam_perturbation(g, [p.detach() for p in params], 0.05)
    with torch.no_grad():
        for p, d in zip(params, e):
            p.add_(d)
    g_sam = torch.autograd.grad(loss_fn(), params)
    with torch.no_grad():
        for p, d in zip(params, e):
            p.sub_(d)
    start = [p.detach().clone() for p in params]
    opt = tz.Modular(params, tz.m.SAM(0.05), tz.m.LR(1.0))
    _run_tz(model, opt, [(x, y)])
    for p, s, gs in zip(params, start, g_sam):
        torch.testing.assert_close(s - p.detach(), gs, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(p.grad, gs, rtol=1e-12, atol=1e-14)  # p.grad holds the SAM gradient


def test_a_line_search_after_sam_evaluates_the_sam_objective():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.SAM(0.05), tz.m.Backtracking(init=1.0, maxiter=5))
    losses = _run_tz(model, opt, _batches(4))
    nfev = int(opt.stats()["nfev"])
    trials = int(opt.stats()["Backtracking/evaluations"])
    assert trials >= 1 and nfev == 2 + 2 * trials  # each trial: the gradient at x, the loss at x + e
    assert all(math.isfinite(v) for v in losses)


def test_needs_a_closure_and_must_come_before_the_update_is_formed():
    model = _model()
    opt = tz.Modular(model.parameters(), tz.m.SAM(), tz.m.LR(0.1))
    model(torch.randn(2, 5, dtype=F64)).sum().backward()
    with pytest.raises(RuntimeError, match=r"SAM evaluates the gradient at a perturbed point: pass a closure"):
        opt.step()
    late = tz.Modular(model.parameters(), tz.m.Adam(), tz.m.SAM(), tz.m.LR(0.1))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="must come before the modules that form the update"):
        _run_tz(model, late, _batches(1))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


def test_p_and_eps_must_agree_between_groups():
    model = _model()
    ps = list(model.parameters())
    opt = tz.Modular([{"params": ps[:2], "p": 3.0}, {"params": ps[2:]}], tz.m.SAM(), tz.m.LR(0.1))
    with pytest.raises(ValueError, match="p differs between param groups"):
        _run_tz(model, opt, _batches(1))
