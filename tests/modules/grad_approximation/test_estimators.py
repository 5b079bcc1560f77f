"""Gradient estimators: FDM against autograd with the error falling at its formula's order;
the random estimators' mean over many seeds against the true gradient on a quadratic; MeZO
against the stored-direction estimate; forward-mode directional derivatives against autograd;
and Modular's contract for chains without backward()."""
from __future__ import annotations

import math

import pytest
import torch

import torchzero as tz
from torchzero.functional.zeroth_order import directional_derivative, random_direction, randomized_gradient, sample_seed

F64 = torch.float64


def _smooth(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(0.3 * x).sum() + (x[:-1] * x[1:] ** 2).sum()


def _estimate(module, params, closure):
    """The estimate the module forms at ``params`` (an LR of 0 leaves them where they are)."""
    seen = {}

    class Capture(tz.m.SumOfSquares):
        CAPABILITIES = tz.core.Capabilities()

        def step(self, var):
            seen["grad"] = [g.clone() for g in var.grad]
            return var

    opt = tz.Modular(params, module, Capture(), tz.m.LR(0.0))
    loss = opt.step(closure)
    return seen["grad"], loss, opt


# ---------------------------------------------------------------------------------- FDM
@pytest.mark.parametrize(("formula", "order"), [("forward", 1), ("backward", 1), ("central", 2)])
def test_fdm_error_falls_at_the_order_of_its_formula(formula, order):
    x0 = torch.tensor([0.3, -0.7, 1.1, 0.2], dtype=F64)
    true = torch.autograd.functional.jacobian(_smooth, x0)
    errors = []
    for h in (1e-2, 1e-3):
        x = torch.nn.Parameter(x0.clone())
        (g,), _, _ = _estimate(tz.m.FDM(h=h, formula=formula), [x], lambda backward=True: _smooth(x))
        errors.append(float((g - true).abs().max()))
        assert torch.equal(x.detach(), x0)  # put back bit for bit
    ratio = errors[0] / errors[1]
    assert 10**order / 2 < ratio < 10**order * 2, (errors, ratio)


def test_fdm_reports_the_loss_at_x_for_one_sided_formulas():
    x = torch.nn.Parameter(torch.tensor([0.3, -0.7], dtype=F64))
    _, loss, opt = _estimate(tz.m.FDM(formula="forward"), [x], lambda backward=True: _smooth(x))
    assert float(loss) == float(_smooth(x.detach()))
    assert float(opt.stats()["nfev"]) == 3  # f(x) and one per element


def test_fdm_in_half_precision_steps_at_least_one_ulp():
    x = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float16))  # h is below half an ulp at 3
    (g,), _, _ = _estimate(tz.m.FDM(h=1e-3), [x], lambda backward=True: (x.double() ** 2).sum())
    assert abs(float(g[0]) - 6) < 1e-2 and abs(float(g[1]) + 4) < 1e-2


def test_fdm_refuses_too_many_elements():
    x = torch.nn.Parameter(torch.zeros(100_001))
    opt = tz.Modular([x], tz.m.FDM(), tz.m.LR(0.1))
    with pytest.raises(ValueError, match="SPSA"):
        opt.step(lambda backward=True: x.sum())


# ---------------------------------------------------------------------------------- unbiasedness
A = torch.tensor([[3.0, 0.5, 0.0, 0.2], [0.5, 2.0, 0.3, 0.0], [0.0, 0.3, 1.0, 0.1], [0.2, 0.0, 0.1, 0.5]], dtype=F64)
X0 = torch.tensor([1.0, -2.0, 0.5, 0.3], dtype=F64)
TRUE = A @ X0 + 1.0

ESTIMATORS = {
    "SPSA": lambda: tz.m.SPSA(h=0.1, seed=11),
    "RDSA": lambda: tz.m.RDSA(h=0.1, seed=12),
    "RandomizedFDM-sphere": lambda: tz.m.RandomizedFDM(h=0.1, distribution="sphere", seed=13),
    "RandomizedFDM-backward-gaussian": lambda: tz.m.RandomizedFDM(h=1e-6, formula="backward", distribution="gaussian", seed=14),
    "GaussianSmoothing": lambda: tz.m.GaussianSmoothing(h=0.5, n_samples=1, seed=15),
    "MeZO-rademacher": lambda: tz.m.MeZO(h=0.1, seed=16),
    "MeZO-gaussian": lambda: tz.m.MeZO(h=0.1, distribution="gaussian", seed=17),
    "ForwardGradient": lambda: tz.m.ForwardGradient(seed=18),
    "ForwardGradient-central": lambda: tz.m.ForwardGradient(jvp_method="central", distribution="rademacher", seed=19),
}


@pytest.mark.parametrize("make", list(ESTIMATORS.values()), ids=list(ESTIMATORS))
def test_the_mean_estimate_is_the_gradient_on_a_quadratic(make):
    """On $f = x^T A x / 2 + 1^T x$ each estimator is unbiased (the forward Gaussian-smoothing
    estimate too: the smoothing adds a constant). Over 3,000 draws the mean is within 5
    standard errors of $\\nabla f$ in every coordinate."""
    x = torch.nn.Parameter(X0.clone())
    draws = []
    module = make()

    class Capture(tz.m.SumOfSquares):
        CAPABILITIES = tz.core.Capabilities()

        def step(self, var):
            draws.append(torch.cat([g.reshape(-1) for g in var.grad]))
            return var

    opt = tz.Modular([x], module, Capture(), tz.m.LR(0.0))
    closure = lambda backward=True: 0.5 * x @ A @ x + x.sum()  # noqa: E731
    for _ in range(3000):
        opt.step(closure)
    d = torch.stack(draws)
    mean, se = d.mean(0), d.std(0) / math.sqrt(len(d))
    assert ((mean - TRUE).abs() <= 5 * se + 1e-6).all(), (mean, TRUE, se)
    assert torch.allclose(x.detach(), X0, rtol=0, atol=1e-12)


def test_a_central_estimate_is_the_difference_quotient_times_the_direction():
    x = torch.nn.Parameter(X0.clone())
    (g,), _, opt = _estimate(tz.m.SPSA(h=0.01, n_samples=2, seed=5), [x], lambda backward=True: 0.5 * x @ A @ x + x.sum())
    f = lambda v: float(0.5 * v @ A @ v + v.sum())  # noqa: E731
    expected = torch.zeros(4, dtype=F64)
    for k in range(2):
        (z,) = random_direction([X0], sample_seed(5, 0, k), "rademacher")
        expected += (f(X0 + 0.01 * z) - f(X0 - 0.01 * z)) / 0.02 * z / 2
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-12)
    assert float(opt.stats()["nfev"]) == 4


def test_mezo_equals_the_stored_direction_estimate():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    xs, ys = torch.randn(16, 3), torch.randn(16, 1)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    closure = lambda backward=True: torch.nn.functional.mse_loss(model(xs), ys)  # noqa: E731
    got, loss, _ = _estimate(tz.m.MeZO(h=1e-2, n_samples=3, distribution="gaussian", seed=7), params, closure)
    for p, b in zip(params, before):  # put back up to rounding
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=1e-6)
        p.data.copy_(b)
    seeds = [sample_seed(7, 0, k) for k in range(3)]
    with torch.no_grad():
        expected, expected_loss = randomized_gradient(lambda: float(closure()), params, 1e-2, "central", seeds, "gaussian")
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert abs(float(loss) - expected_loss) < 1e-5


def test_forward_mode_directional_derivative_equals_autograd():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.GELU(), torch.nn.LayerNorm(6), torch.nn.Linear(6, 1)).double()
    xs = torch.randn(10, 3, dtype=F64)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    v = [torch.randn_like(p) for p in params]
    loss = model(xs).pow(2).mean()
    grads = torch.autograd.grad(loss, params)
    value, jvp = directional_derivative(lambda: model(xs).pow(2).mean(), params, v)
    assert value == pytest.approx(float(loss), rel=1e-14)
    assert jvp == pytest.approx(sum(float((g * t).sum()) for g, t in zip(grads, v)), rel=1e-12)
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))
    assert all(p.requires_grad and p.grad is None for p in params)


# ---------------------------------------------------------------------------------- the Modular contract
def test_spsa_adam_trains_without_backward():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    xs = torch.randn(128, 4)
    ys = torch.sin(xs.sum(1, keepdim=True))
    opt = tz.Modular(model.parameters(), tz.m.SPSA(n_samples=4), tz.m.Adam(), tz.m.LR(1e-2))

    def closure(backward=True):
        assert not backward, "an estimator calls closure(False)"
        return torch.nn.functional.mse_loss(model(xs), ys)

    first = float(closure(False))
    for _ in range(400):
        loss = opt.step(closure)
    assert float(loss) < 0.5 * first
    assert all(p.grad is None for p in model.parameters())


def test_frozen_parameters_are_not_perturbed_or_stepped():
    a = torch.nn.Parameter(torch.ones(3, dtype=F64))
    b = torch.ones(2, dtype=F64, requires_grad=False)
    opt = tz.Modular([a, b], tz.m.SPSA(seed=0), tz.m.LR(0.1))
    seen = []
    opt.step(lambda backward=True: (seen.append(b.clone()), (a**2).sum() + (b**2).sum())[1])
    assert all(torch.equal(s, torch.ones(2, dtype=F64)) for s in seen) and not torch.equal(a.detach(), torch.ones(3, dtype=F64))


def test_an_estimator_must_come_first():
    with pytest.raises(ValueError, match="must be the first module"):
        tz.Modular([torch.nn.Parameter(torch.ones(2))], tz.m.Adam(), tz.m.SPSA())
    with pytest.raises(ValueError, match="must be the first module"):
        tz.Modular([torch.nn.Parameter(torch.ones(2))], tz.m.Chain(tz.m.SPSA(), tz.m.Adam()), tz.m.MeZO())


def test_an_estimator_needs_a_closure():
    x = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([x], tz.m.SPSA(), tz.m.LR(0.1))
    with pytest.raises(RuntimeError, match="needs the closure"):
        opt.step()


def test_a_non_scalar_loss_is_named():
    x = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([x], tz.m.SPSA(), tz.m.LR(0.1))
    with pytest.raises(TypeError, match="SPSA: the closure must return the loss as one number"):
        opt.step(lambda backward=True: x * 2)
    assert torch.equal(x.detach(), torch.ones(2))


def test_a_skipped_step_leaves_parameters_and_draws_as_they_were():
    """A NaN loss at a perturbed point: the step is skipped, the parameters are bitwise where
    they were and the next step makes the draws the skipped one would have made."""
    runs = []
    for poison in (True, False):
        x = torch.nn.Parameter(X0.clone())
        opt = tz.Modular([x], tz.m.SPSA(h=0.01, seed=3), tz.m.Adam(), tz.m.LR(0.1))
        calls = [0]

        def closure(backward=True, x=x, calls=calls, poison=poison):
            calls[0] += 1
            value = 0.5 * x @ A @ x
            return value * math.nan if poison and calls[0] == 2 else value

        if poison:
            with pytest.warns(RuntimeWarning, match="skipped"):
                opt.step(closure)
            assert torch.equal(x.detach(), X0) and opt.skipped_steps == 1
        for _ in range(3):
            opt.step(closure)
        runs.append(x.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_a_state_dict_resumes_the_draws():
    def run(split):
        x = torch.nn.Parameter(X0.clone())
        make = lambda: tz.Modular([x], tz.m.RDSA(seed=None), tz.m.Adam(), tz.m.LR(0.05))  # noqa: E731
        torch.manual_seed(123)
        opt = make()
        closure = lambda backward=True: 0.5 * x @ A @ x  # noqa: E731
        for i in range(6):
            if i == split:
                sd = opt.state_dict()
                torch.manual_seed(999)  # a new process: another global seed
                opt = make()
                opt.load_state_dict(sd)
            opt.step(closure)
        return x.detach().clone()

    assert torch.equal(run(3), run(-1))
