"""Transform / TensorwiseTransform, targets, settings layering, chains and apply_transform."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from conftest import make_params, set_grads


class Double(tz.Transform):
    """Multiplies by 2 and records what it saw."""

    def __init__(self, target="update"):
        super().__init__({"k": 1.0}, target=target)
        self.seen: list[list[torch.Tensor]] = []

    def apply_tensors(self, tensors, states, settings, ctx):
        self.seen.append([t.clone() for t in tensors])
        return [t * 2 for t in tensors]  # new tensors, not in place


class ReadGrad(tz.Transform):
    """Replaces the update with the current gradient (to observe what later modules see)."""

    def __init__(self):
        super().__init__(uses_grad=True)

    def apply_tensors(self, tensors, states, settings, ctx):
        return [g.clone() for g in ctx.grads]


class AddState(tz.TensorwiseTransform):
    """Tensorwise: keeps a running sum, adds ``alpha`` times it."""

    def __init__(self, alpha=1.0):
        super().__init__({"alpha": alpha})

    def init_state(self, tensor, setting):
        return {"sum": torch.zeros_like(tensor)}

    def update_tensor(self, tensor, state, setting, ctx, i):
        state["sum"] = state["sum"] + tensor

    def apply_tensor(self, tensor, state, setting, ctx, i):
        return tensor + setting["alpha"] * state["sum"]


def test_target_update_leaves_grad_alone():
    (p,) = make_params([(3,)])
    set_grads([p], 0)
    g0 = p.grad.clone()
    p0 = p.detach().clone()
    tz.Modular([p], Double("update")).step()
    assert torch.equal(p.grad, g0)
    torch.testing.assert_close(p.detach(), p0 - 2 * g0)


def test_target_grad_writes_grad_and_later_modules_see_it():
    (p,) = make_params([(3,)])
    set_grads([p], 0)
    g0 = p.grad.clone()
    grad_obj = p.grad
    reader = ReadGrad()
    p0 = p.detach().clone()
    tz.Modular([p], Double("grad"), reader).step()
    assert p.grad is grad_obj  # modified in place, same tensor
    torch.testing.assert_close(p.grad, 2 * g0)
    torch.testing.assert_close(p.detach(), p0 - 2 * g0)


def test_update_formed_before_grad_target_is_not_changed():
    (p,) = make_params([(3,)])
    set_grads([p], 0)
    g0 = p.grad.clone()
    p0 = p.detach().clone()
    # the first Double forms the update from the gradient; the grad-target one then changes only p.grad
    tz.Modular([p], Double("update"), Double("grad")).step()
    torch.testing.assert_close(p.grad, 2 * g0)
    torch.testing.assert_close(p.detach(), p0 - 2 * g0)


def test_bad_target():
    with pytest.raises(ValueError, match="target.*'gradient'"):
        Double("gradient")


def test_settings_layering_default_group_override():
    a, b, c = make_params([(2,), (2,), (2,)])
    mod = AddState(alpha=1.0).set_param_groups([{"params": [c], "alpha": 3.0}])
    tz.Modular([{"params": [a]}, {"params": [b, c], "alpha": 2.0}], mod)
    assert mod.settings(a)["alpha"] == 1.0
    assert mod.settings(b)["alpha"] == 2.0
    assert mod.settings(c)["alpha"] == 3.0


def test_tensorwise_transform_state():
    (p,) = make_params([(2,)])
    mod = AddState(alpha=0.5)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out1 = tz.apply_transform(mod, [x], params=[p])[0]
    out2 = tz.apply_transform(mod, [x], params=[p])[0]
    torch.testing.assert_close(out1, x + 0.5 * x)
    torch.testing.assert_close(out2, x + 0.5 * 2 * x)


def test_list_is_a_chain_and_nested_lists_flatten():
    (p,) = make_params([(3,)])
    set_grads([p], 0)
    g0 = p.grad.clone()
    p0 = p.detach().clone()
    opt = tz.Modular([p], [Double(), [Double(), tz.m.LR(0.5)]])
    opt.step()
    torch.testing.assert_close(p.detach(), p0 - 2 * g0)
    assert [type(m).__name__ for m in opt.chain.modules] == ["Double", "Double", "LR"]


def test_chain_as_inner():
    x = torch.tensor([3.0, 4.0])
    out = tz.apply_transform(tz.m.ClipNormByEMA(ema_init="update", inner=[tz.m.LR(2.0), tz.m.LR(3.0)]), [x])
    # ema = x, so d = 1 and the update is inner(x) = 6x
    torch.testing.assert_close(out[0], 6 * x)


def test_apply_transform_does_not_modify_inputs():
    x = torch.tensor([3.0, 4.0])
    out = tz.apply_transform([tz.m.ClipNorm(1.0), tz.m.LR(2.0)], [x])
    torch.testing.assert_close(x, torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(out[0], torch.tensor([1.2, 1.6]))


def test_apply_transform_length_mismatch():
    with pytest.raises(ValueError, match="one param per tensor"):
        tz.apply_transform(tz.m.LR(1.0), [torch.ones(2)], params=[torch.ones(2), torch.ones(2)])


def test_var_is_passed_down():
    seen = {}

    class Spy(tz.Module):
        def step(self, var):
            seen["var"] = var
            return var

    a, b = make_params([(2,), (3,)])
    set_grads([a], 0)
    tz.Modular([a, b], Spy()).step()
    var = seen["var"]
    assert var.params == [a] and var.grad[0] is a.grad and var.update is None


def test_module_repr():
    r = repr(tz.m.ClipNormByEMA(inner=tz.m.Adam()))
    assert "ClipNormByEMA(" in r and "(inner): Adam(" in r


# ---------------------------------------------------------------- the copy form (apply_tensors_copy)
class InPlaceTwice(tz.Transform):
    """Doubles the update in place: any update tensor that aliased ``p.grad`` would change it."""

    def apply_tensors(self, tensors, states, settings, ctx):
        torch._foreach_mul_(tensors, 2.0)
        return tensors


COPY_FORMS = {
    "ClipValue": lambda: tz.m.ClipValue(0.1),
    "ClipNorm": lambda: tz.m.ClipNorm(0.5),
    "ClipNorm-global": lambda: tz.m.ClipNorm(0.5, dim="global"),
    "ClipNorm-dim0-min_size": lambda: tz.m.ClipNorm(0.2, dim=0, min_size=5),
    "Normalize": lambda: tz.m.Normalize(2.0),
    "Centralize": lambda: tz.m.Centralize(),
    "Centralize-global": lambda: tz.m.Centralize(dim="global"),
    "ClipNormByEMA": lambda: tz.m.ClipNormByEMA(),
    "NormalizeByEMA": lambda: tz.m.NormalizeByEMA(),
    "ClipValueByEMA": lambda: tz.m.ClipValueByEMA(),
    "ClipNormGrowth": lambda: tz.m.ClipNormGrowth(),
    "ClipNormGrowth-global": lambda: tz.m.ClipNormGrowth(parameterwise=False),
}


def _trajectory(factory, copy_form: bool, monkeypatch):
    params = make_params([(4, 5), (3,), (), (0, 2), (2, 3, 3)])
    module = factory()
    if not copy_form:
        monkeypatch.setattr(module, "has_copy_form", lambda: False)
    opt = tz.Modular(params, module, InPlaceTwice(), tz.m.LR(0.1))
    for s in range(4):
        set_grads(params, s)
        for p in params:
            p.grad.mul_(3.0 if s % 2 else 0.1)  # some steps clip, some don't
        raw = [p.grad.clone() for p in params]
        opt.step()
        for p, g in zip(params, raw):
            assert torch.equal(p.grad, g), "p.grad changed: an update tensor aliased it"
    return params, opt


@pytest.mark.parametrize("name", list(COPY_FORMS))
def test_copy_form_equals_in_place_form(name, monkeypatch):
    """The first module reads p.grad and returns new tensors; bitwise what clone + in place gives."""
    a, opt_a = _trajectory(COPY_FORMS[name], True, monkeypatch)
    b, opt_b = _trajectory(COPY_FORMS[name], False, monkeypatch)
    assert opt_a.chain.modules[0].has_copy_form()
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert opt_a.stats().keys() == opt_b.stats().keys()
    for k, v in opt_a.stats().items():
        assert torch.equal(v, opt_b.stats()[k]), k


def test_copy_form_not_used_after_another_module_formed_the_update():
    calls = []

    class Spy(tz.m.ClipValue):
        def apply_tensors_copy(self, *args):  # type: ignore[no-untyped-def]
            calls.append("copy")
            return super().apply_tensors_copy(*args)

    params = make_params([(3,)])
    set_grads(params, 0)
    tz.Modular(params, Spy(0.1), tz.m.LR(0.1)).step()
    tz.Modular(params, tz.m.Mul(2.0), Spy(0.1), tz.m.LR(0.1)).step()
    assert calls == ["copy"]


# ---------------------------------------------------------------- the stream form (apply_tensors_stream)
class StreamingScale(tz.Transform):
    """``u = c * t + state``, one tensor at a time; records how many of its earlier outputs are
    still alive when it makes the next one."""

    def __init__(self, c: float = 2.0, target: str = "update"):
        super().__init__({"c": c}, target=target)
        self.alive: list[int] = []
        self.streamed = 0

    def init_state(self, tensor, setting):
        return {"acc": torch.zeros_like(tensor)}

    def update_tensors(self, tensors, states, settings, ctx):
        torch._foreach_add_(states["acc"], tensors)

    def apply_tensors_stream(self, tensors, states, settings, ctx):
        import weakref

        self.streamed += 1
        made: list[weakref.ref] = []
        for t, acc, s in zip(tensors, states["acc"], settings):
            self.alive.append(sum(r() is not None for r in made))
            u = t * s["c"] + acc
            made.append(weakref.ref(u))
            yield u
            del u

    def apply_tensors(self, tensors, states, settings, ctx):
        return list(self.apply_tensors_stream(tensors, states, settings, ctx))


class Batch(StreamingScale):
    """The same module without its stream form: every update made before any is applied."""

    def has_stream_form(self) -> bool:
        return False


STREAM_CHAINS = {
    "alone": lambda cls: [cls()],
    "after-a-module": lambda cls: [tz.m.Mul(-1.5), cls()],
    "trailing-LR": lambda cls: [cls(), tz.m.LR(0.1)],
    "trailing-LR-tensor": lambda cls: [cls(), tz.m.LR(torch.tensor(0.1, dtype=torch.float64))],
    "trailing-LR-per-group": lambda cls: [cls(), tz.m.LR(0.1)],
}


def _stream_run(name: str, cls: type) -> tuple[list[torch.Tensor], tz.Modular]:
    params = make_params([(4, 5), (3,), (), (0, 2), (2, 3, 3)])
    modules = STREAM_CHAINS[name](cls)
    groups = [{"params": params[:2], "lr": 0.3}, {"params": params[2:]}] if name.endswith("per-group") else params
    opt = tz.Modular(groups, *modules)
    for s in range(4):
        set_grads(params, s)
        raw = [p.grad.clone() for p in params]
        opt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, raw)), "p.grad changed"
    return params, opt


@pytest.mark.parametrize("name", list(STREAM_CHAINS))
def test_stream_form_equals_the_batch_form_bit_for_bit_holding_one_update_at_a_time(name):
    a, opt_a = _stream_run(name, StreamingScale)
    b, opt_b = _stream_run(name, Batch)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    for x, y in zip(a, b):
        key = next(k for k in opt_a.state[x] if k.endswith(".acc"))
        assert torch.equal(opt_a.state[x][key], opt_b.state[y][key])
    streaming = next(m for m in opt_a.chain.modules if isinstance(m, StreamingScale))
    assert streaming.streamed == 4
    assert streaming.alive and max(streaming.alive) == 0  # each update dropped before the next is made
    batch = next(m for m in opt_b.chain.modules if isinstance(m, StreamingScale))
    assert max(batch.alive) == 4  # the batch form keeps them all until the parameters move


@pytest.mark.parametrize(
    "chain",
    [
        pytest.param(lambda: [StreamingScale(), tz.m.Mul(0.5)], id="not-last"),
        pytest.param(lambda: [StreamingScale(target="grad")], id="gradient-target"),
        pytest.param(lambda: [tz.m.Mul(0.5), StreamingScale(), tz.m.LR(0.1), tz.m.Mul(1.0)], id="LR-not-last"),
    ],
)
def test_stream_form_is_only_used_by_the_module_that_moves_the_parameters(chain):
    params = make_params([(3,), (2, 2)])
    modules = chain()
    opt = tz.Modular(params, *modules)
    set_grads(params, 0)
    opt.step()
    streaming = next(m for m in modules if isinstance(m, StreamingScale))
    assert streaming.streamed == 1  # called by apply_tensors: all made before any is applied
    assert max(streaming.alive) == 1


def test_stream_form_is_not_used_by_a_module_with_inner_children():
    class WithInner(StreamingScale):
        def __init__(self):
            super().__init__()
            self.set_child("inner", tz.m.Mul(2.0))

    m = WithInner()
    assert not m.has_stream_form()
    assert StreamingScale().has_stream_form() and not tz.m.Adam().has_stream_form()


def test_cached_settings_follow_group_changes_and_overrides():
    """Settings lists are cached between steps: a new group value, an override added mid-run and
    a new param group must all be seen on the next step (reference: a fresh optimizer)."""
    params = make_params([(3,), (2,)])

    def run(changes):
        ps = [p.detach().clone().requires_grad_() for p in params]
        clip = tz.m.ClipValue(1.0)
        opt = tz.Modular([{"params": [ps[0]]}], clip, tz.m.LR(1.0))
        for s in range(4):
            for p in ps:
                p.grad = torch.full_like(p, 3.0)
            if s in changes:
                changes[s](opt, clip, ps)
            opt.step()
        return [p.detach() for p in ps]

    out = run({1: lambda o, c, ps: o.param_groups[0].__setitem__("value", 0.5),
               2: lambda o, c, ps: c.set_param_groups([{"params": [ps[0]], "value": 0.25}]),
               3: lambda o, c, ps: o.add_param_group({"params": [ps[1]], "value": 2.0})})
    # step 0: clip to 1.0; step 1: 0.5; step 2: 0.25 (override); step 3: 0.25 for ps[0], 2.0 for ps[1]
    torch.testing.assert_close(out[0], params[0].detach() - (1.0 + 0.5 + 0.25 + 0.25))
    torch.testing.assert_close(out[1], params[1].detach() - 2.0)
