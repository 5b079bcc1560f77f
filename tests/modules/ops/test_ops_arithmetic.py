"""The elementwise ops against direct tensor math, with number and chain operands."""
from __future__ import annotations

import io
import math

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads

SHAPES = [(4, 3), (3,), (), (2, 3, 2)]


def _tensors(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]


# (id, module factory, reference on one tensor u)
ELEMENTWISE = [
    ("Mul-number", lambda: tz.m.Mul(0.5), lambda u: u * 0.5),
    ("Mul-chain", lambda: tz.m.Mul(tz.m.Negate()), lambda u: -(u * u)),
    ("Mul-chain-list", lambda: tz.m.Mul([tz.m.Abs(), tz.m.Add(1.0)]), lambda u: u * (u.abs() + 1)),
    ("Div-number", lambda: tz.m.Div(4.0), lambda u: u / 4.0),
    ("Div-negative", lambda: tz.m.Div(-0.5), lambda u: u / -0.5),
    ("Div-chain", lambda: tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]), lambda u: u / (u.abs() + 1)),
    ("Add-number", lambda: tz.m.Add(0.3), lambda u: u + 0.3),
    ("Add-number-alpha", lambda: tz.m.Add(0.3, alpha=-2), lambda u: u - 0.6),
    ("Add-chain", lambda: tz.m.Add(tz.m.Mul(0.5)), lambda u: 1.5 * u),
    ("Add-chain-alpha", lambda: tz.m.Add(tz.m.Sign(), alpha=0.1), lambda u: u + 0.1 * u.sign()),
    ("Sub-number", lambda: tz.m.Sub(0.3), lambda u: u - 0.3),
    ("Sub-number-alpha", lambda: tz.m.Sub(0.3, alpha=2), lambda u: u - 0.6),
    ("Sub-chain", lambda: tz.m.Sub(tz.m.Mul(0.25)), lambda u: 0.75 * u),
    ("Sub-chain-alpha", lambda: tz.m.Sub(tz.m.Abs(), alpha=0.5), lambda u: u - 0.5 * u.abs()),
    ("Negate", lambda: tz.m.Negate(), lambda u: -u),
    ("Abs", lambda: tz.m.Abs(), lambda u: u.abs()),
    ("Sign", lambda: tz.m.Sign(), lambda u: u.sign()),
    ("Clip-both", lambda: tz.m.Clip(-0.5, 0.7), lambda u: u.clamp(-0.5, 0.7)),
    ("Clip-min", lambda: tz.m.Clip(min=0.1), lambda u: u.clamp(min=0.1)),
    ("Clip-max", lambda: tz.m.Clip(max=-0.1), lambda u: u.clamp(max=-0.1)),
    ("Clip-none", lambda: tz.m.Clip(), lambda u: u),
    ("Clip-chain-min", lambda: tz.m.Clip(min=tz.m.Mul(0.5)), lambda u: torch.maximum(u, 0.5 * u)),
    ("Clip-chain-max", lambda: tz.m.Clip(max=[tz.m.Abs(), tz.m.Mul(0.5)]), lambda u: torch.minimum(u, 0.5 * u.abs())),
    ("Clip-chain-and-number", lambda: tz.m.Clip(-0.2, tz.m.Abs()), lambda u: u.clamp(min=-0.2)),
    # torch.clamp semantics where the lower bound exceeds the upper one: the upper bound wins
    ("Clip-crossed-chains", lambda: tz.m.Clip(tz.m.Add(1.0), tz.m.Add(-1.0)), lambda u: u - 1.0),
    ("Identity", lambda: tz.m.Identity(), lambda u: u),
]


@pytest.mark.parametrize("make, ref", [(m, r) for _, m, r in ELEMENTWISE], ids=[i for i, _, _ in ELEMENTWISE])
def test_op_matches_tensor_math(make, ref):
    tensors = _tensors()
    out = tz.apply_transform(make(), tensors)
    for o, t in zip(out, tensors):
        assert o.shape == t.shape and o.dtype == t.dtype
        torch.testing.assert_close(o, ref(t), rtol=1e-14, atol=0)


@pytest.mark.parametrize("make, ref", [(m, r) for _, m, r in ELEMENTWISE], ids=[i for i, _, _ in ELEMENTWISE])
def test_op_in_modular_moves_params_by_minus_op_of_grad(make, ref):
    params = make_params(SHAPES)
    opt = tz.Modular(params, make(), tz.m.LR(0.1))
    for step in range(3):
        set_grads(params, step)
        before = [p.detach().clone() for p in params]
        grads = [p.grad.clone() for p in params]
        opt.step()
        for b, g, p in zip(before, grads, params):
            torch.testing.assert_close(p.detach(), b - 0.1 * ref(g), rtol=1e-14, atol=1e-15)
            assert torch.equal(p.grad, g), "p.grad must not be modified with target='update'"


def test_inputs_are_not_modified():
    tensors = _tensors()
    copies = [t.clone() for t in tensors]
    for _, make, _ in ELEMENTWISE:
        tz.apply_transform(make(), tensors)
    for t, c in zip(tensors, copies):
        assert torch.equal(t, c)


def test_operand_chain_receives_a_copy_of_the_update():
    # Mul(Negate()): if the operand chain negated the update itself (aliasing), the result
    # would be +u^2 (or the product of the negated update with itself)
    u = torch.tensor([2.0, -3.0])
    out = tz.apply_transform(tz.m.Mul(tz.m.Negate()), [u])[0]
    torch.testing.assert_close(out, torch.tensor([-4.0, -9.0]))


def test_sign_of_zero_is_zero_and_abs_of_negative_zero():
    out = tz.apply_transform(tz.m.Sign(), [torch.tensor([0.0, -0.0, 2.0, -3.0])])[0]
    assert out.tolist() == [0.0, 0.0, 1.0, -1.0]


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(nan=1.5), dict(posinf=3.0, neginf=-4.0), dict(nan=-1.0, posinf=0.0, neginf=0.0)],
    ids=["defaults", "nan", "infs", "all"],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_nan_to_num_matches_torch(kwargs, dtype):
    u = torch.tensor([math.nan, math.inf, -math.inf, 1.0, -2.0], dtype=dtype)
    out = tz.apply_transform(tz.m.NanToNum(**kwargs), [u, u[:2].clone()])
    assert torch.equal(out[0], torch.nan_to_num(u, **kwargs))
    assert torch.equal(out[1], torch.nan_to_num(u[:2], **kwargs))


# ------------------------------------------------------------------ per-parameter settings
def test_number_operands_follow_param_groups():
    a, b, c = make_params([(3,), (2, 2), ()])
    opt = tz.Modular(
        [{"params": [a]}, {"params": [b], "other": 3.0, "alpha": 0.5}, {"params": [c], "min": -0.1}],
        tz.m.Mul(2.0),
        tz.m.Add(1.0, alpha=1.0),
        tz.m.Clip(min=-10.0),
    )
    set_grads([a, b, c], 0)
    before = [p.detach().clone() for p in (a, b, c)]
    grads = [p.grad.clone() for p in (a, b, c)]
    opt.step()
    # group 2 overrides Mul's and Add's "other" (3) and Add's alpha; group 3 overrides Clip's min
    expected = [
        (grads[0] * 2 + 1).clamp(min=-10),
        (grads[1] * 3 + 0.5 * 3).clamp(min=-10),
        (grads[2] * 2 + 1).clamp(min=-0.1),
    ]
    for p, b0, e in zip((a, b, c), before, expected):
        torch.testing.assert_close(p.detach(), b0 - e, rtol=1e-14, atol=1e-15)


def test_chain_operand_is_not_a_setting():
    # with a chain operand there is no "other" setting to override
    m = tz.m.Mul(tz.m.Abs())
    assert "other" not in m.defaults and "other" in m.children


def test_param_group_setting_is_validated():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Div.*other"):
        tz.Modular([{"params": [w], "other": 0.0}], tz.m.Div(2.0))
    with pytest.raises(ValueError, match="Clip.*min"):
        tz.Modular([w], tz.m.Clip(0.0)).add_param_group({"params": [torch.zeros(1, requires_grad=True)], "min": math.nan})


# ------------------------------------------------------------------ targets
@pytest.mark.parametrize(
    "make", [lambda t: tz.m.Mul(tz.m.Abs(), target=t), lambda t: tz.m.Clip(-0.1, 0.1, target=t), lambda t: tz.m.Negate(target=t)], ids=["Mul-chain", "Clip", "Negate"]
)
def test_target_grad_transforms_the_gradient_for_later_modules(make):
    params = make_params(SHAPES)
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = tz.Modular(params, make("grad"), tz.m.Adam(), tz.m.LR(0.1))
    ref_opt = tz.Modular(ref, make("update"), tz.m.Adam(), tz.m.LR(0.1))
    for s in range(5):
        set_grads(params, s)
        set_grads(ref, s)
        opt.step()
        ref_opt.step()
        for p, q in zip(params, ref):
            torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)
    # and p.grad holds the transformed gradient
    set_grads(ref, 99)
    expected = tz.apply_transform(make("update"), [q.grad for q in ref])
    set_grads(params, 99)
    opt.step()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e)


# ------------------------------------------------------------------ Grad and Identity
def test_grad_restarts_the_update_from_the_gradient():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Adam(), tz.m.Mul(100.0), tz.m.Grad(), tz.m.LR(0.1))
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    opt.step()
    for b, g, p in zip(before, grads, params):
        torch.testing.assert_close(p.detach(), b - 0.1 * g, rtol=1e-14, atol=1e-15)
        assert torch.equal(p.grad, g)  # Grad's update is a copy: LR did not scale p.grad


def test_grad_sees_the_gradient_transformed_by_target_grad_modules():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Mul(2.0, target="grad"), tz.m.Mul(5.0), tz.m.Grad())
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    opt.step()
    for b, g, p in zip(before, grads, params):
        torch.testing.assert_close(p.detach(), b - 2 * g, rtol=1e-14, atol=1e-15)


def test_grad_in_an_operand_gives_the_chain_the_raw_gradient():
    params = make_params(SHAPES)
    opt = tz.Modular(params, tz.m.Sign(), tz.m.Add(tz.m.Grad(), alpha=0.1))
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    opt.step()
    for b, g, p in zip(before, grads, params):
        torch.testing.assert_close(p.detach(), b - (g.sign() + 0.1 * g), rtol=1e-14, atol=1e-15)


def test_identity_leaves_the_var_untouched():
    from torchzero.core.var import Var

    p = torch.zeros(3, requires_grad=True)
    var = Var(params=[p], grad=[torch.ones(3)])
    assert tz.m.Identity().step(var) is var and var.update is None


# ------------------------------------------------------------------ state of operand chains
def test_stateful_operand_chain_state_round_trips_bitwise():
    def build(params):
        return tz.Modular(params, tz.m.Add([tz.m.Adam(), tz.m.Mul(0.5)], alpha=0.3), tz.m.Clip(max=tz.m.ClipValueByEMA(ema_init="update")), tz.m.LR(0.1))

    params = make_params(SHAPES, dtype=torch.float32)
    opt = build(params)
    for s in range(4):
        set_grads(params, s)
        opt.step()
    sd = opt.state_dict()
    keys = set(sd["state"][0])
    assert {"0.other.0.exp_avg", "0.other.0.exp_avg_sq", "1.max.ema"} <= keys, keys
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    params2 = [p.detach().clone().requires_grad_() for p in params]
    opt2 = build(params2)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    for s in range(4, 10):
        set_grads(params, s)
        set_grads(params2, s)
        opt.step()
        opt2.step()
    for p, q in zip(params, params2):
        assert torch.equal(p, q)


def test_operands_are_evaluated_independently_for_clip_bounds():
    # both bounds get their own copy of the update: Clip(min=Negate(), max=Abs()) = clamp(u, -u, |u|)
    u = torch.tensor([-2.0, 1.0, 3.0])
    out = tz.apply_transform(tz.m.Clip(tz.m.Negate(), tz.m.Abs()), [u])[0]
    torch.testing.assert_close(out, torch.minimum(torch.maximum(u, -u), u.abs()))


def test_mixed_dtypes_with_chain_operands():
    tensors = [torch.randn(3, dtype=torch.float16), torch.randn(2, 2, dtype=torch.float64), torch.randn(4, dtype=torch.bfloat16)]
    out = tz.apply_transform(tz.m.Div([tz.m.Abs(), tz.m.Add(1.0)]), tensors)
    for o, t in zip(out, tensors):
        assert o.dtype == t.dtype
        torch.testing.assert_close(o, t / (t.abs() + 1))
