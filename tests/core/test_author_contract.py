"""The module-author contract: init_state, declared step counters, resolved settings, ctx."""
from __future__ import annotations

import pytest
import torch

import torchzero as tz
from torchzero.core.settings import PerTensor


class Momentum(tz.Transform):
    """The guide's first example: an EMA of the updates."""

    def __init__(self, beta: float = 0.9):
        super().__init__({"beta": beta})

    def init_state(self, tensor, setting):
        return {"buf": torch.zeros_like(tensor)}

    def apply_tensors(self, tensors, states, settings, ctx):
        torch._foreach_lerp_(states["buf"], tensors, 1 - settings["beta"])
        return [b.clone() for b in states["buf"]]


class Recorder(tz.Transform):
    """Records what the base class hands to the methods."""

    STATE_KEYS = {"step": "step", "first": "like_param"}

    def __init__(self, k: float = 1.0):
        super().__init__({"k": k})
        self.inits: list[tuple[torch.Size, float]] = []
        self.seen: list[dict] = []

    def init_state(self, tensor, setting):
        self.inits.append((tensor.shape, setting["k"]))
        return {"first": tensor.clone()}

    def apply_tensors(self, tensors, states, settings, ctx):
        self.seen.append({"new": list(ctx.new), "step": ctx.step, "k": settings["k"], "n": len(tensors)})
        return tensors


def _params(*shapes):
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s)) for s in shapes]


def test_first_example_is_an_ema_of_the_updates():
    # reference: b_t = beta b_{t-1} + (1 - beta) g_t, p -= lr b_t, written out by hand
    (w,) = _params((5,))
    ref = w.detach().clone()
    buf = torch.zeros(5)
    opt = tz.Modular([w], Momentum(0.8), tz.m.LR(0.1))
    for step in range(6):
        g = torch.randn(5)
        w.grad = g.clone()
        opt.step()
        buf = 0.8 * buf + 0.2 * g
        ref -= 0.1 * buf
    torch.testing.assert_close(w.detach(), ref)


def test_init_state_runs_once_per_parameter_with_its_tensor_and_setting():
    a, b = _params((3,), (2, 2))
    rec = Recorder(2.0)
    opt = tz.Modular([{"params": [a]}, {"params": [b], "k": 5.0}], rec)
    for _ in range(3):
        a.grad, b.grad = torch.ones(3), torch.full((2, 2), 2.0)
        opt.step()
    assert rec.inits == [(torch.Size([3]), 2.0), (torch.Size([2, 2]), 5.0)]
    torch.testing.assert_close(opt.state[b]["0"]["first"], torch.full((2, 2), 2.0))


def test_step_counter_is_created_and_advanced_like_torch_optim():
    a, b = _params((3,), (2,))
    rec = Recorder()
    opt = tz.Modular([a, b], rec)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    opt.step()
    b.grad = None  # b misses a step: its own count lags, as in torch.optim.Adam
    opt.step()
    b.grad = torch.ones(2)
    opt.step()
    assert [s["step"] for s in rec.seen] == [1.0, 2.0, 3.0, PerTensor([4.0, 3.0])]
    st = opt.state[a]["0"]["step"]
    assert isinstance(st, torch.Tensor) and st.ndim == 0 and st.device.type == "cpu" and st.is_floating_point()


def test_ctx_new_lists_the_states_created_this_step():
    a, b = _params((3,), (2,))
    rec = Recorder()
    opt = tz.Modular([a, b], rec)
    a.grad = torch.ones(3)
    opt.step()  # only a has a gradient
    b.grad = torch.ones(2)
    opt.step()
    opt.step()
    assert [s["new"] for s in rec.seen] == [[0], [1], []]
    rec.reset()  # cleared state is made anew
    opt.step()
    assert rec.seen[-1]["new"] == [0, 1]


@pytest.mark.parametrize(
    "groups, expected",
    [
        pytest.param(lambda a, b: [a, b], 1.0, id="one-group"),
        pytest.param(lambda a, b: [{"params": [a]}, {"params": [b]}], 1.0, id="two-groups-same-value"),
        pytest.param(lambda a, b: [{"params": [a]}, {"params": [b], "k": 3.0}], PerTensor([1.0, 3.0]), id="group-value"),
    ],
)
def test_settings_arrive_resolved(groups, expected):
    a, b = _params((3,), (2,))
    rec = Recorder()
    opt = tz.Modular(groups(a, b), rec)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    k = rec.seen[-1]["k"]
    assert k == expected and type(k) is type(expected)


def test_settings_follow_overrides_and_schedulers():
    a, b = _params((3,), (2,))
    rec = Recorder().set_param_groups([{"params": [b], "k": 7.0}])
    opt = tz.Modular([a, b], rec)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    opt.param_groups[0]["k"] = 4.0  # a param-group key the module reads: seen on the next step
    opt.step()
    assert [s["k"] for s in rec.seen] == [PerTensor([1.0, 7.0]), PerTensor([4.0, 7.0])]


def test_settings_groups_split_by_structure():
    s = tz.core.Settings([_cm(o=1, k=0.1), _cm(o=2, k=0.1), _cm(o=1, k=0.3)])
    assert s.groups("o") == [((1,), [0, 2]), ((2,), [1])]
    assert s.subset([0, 2])["k"] == PerTensor([0.1, 0.3])
    assert s.each("k") == [0.1, 0.1, 0.3]
    assert s.values("o", "k") == (PerTensor([1, 2, 1]), PerTensor([0.1, 0.1, 0.3]))


def _cm(**kw):
    from collections import ChainMap

    return ChainMap(kw, {}, {})


def test_states_read_one_key_for_all_parameters():
    a, b = _params((3,), (2,))
    opt = tz.Modular([a, b], tz.m.Adam(), tz.m.LR(1e-2))
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    adam = opt.chain.modules[0]
    states = adam.state.many([a, b])
    assert all(x is y for x, y in zip(states["exp_avg"], [states[0]["exp_avg"], states[1]["exp_avg"]]))
    assert states.missing("max_exp_avg_sq") == [0, 1]
    assert states.missing("exp_avg") == []


def test_ctx_reads_params_grads_and_loss_when_asked():
    seen = {}

    class Reads(tz.Transform):
        def apply_tensors(self, tensors, states, settings, ctx):
            seen["params"] = ctx.params
            seen["grads"] = [g.clone() for g in ctx.grads]
            seen["loss"] = ctx.loss
            return tensors

    (w,) = _params((3,))
    opt = tz.Modular([w], Reads(), tz.m.LR(0.1))

    def closure(backward=True):
        loss = (w**2).sum()
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    w0 = w.detach().clone()
    loss = opt.step(closure)
    assert seen["params"][0] is w
    torch.testing.assert_close(seen["grads"][0], 2 * w0)
    assert float(seen["loss"].detach()) == float(loss.detach()) == float((w0**2).sum())


@pytest.mark.parametrize("method", ["apply_tensors", "update_tensors", "apply_tensors_copy"])
def test_old_six_argument_methods_are_refused_when_the_class_is_made(method):
    def old(self, tensors, params, grads, loss, states, settings):
        return tensors

    body = {method: old}
    if method != "apply_tensors":
        body["apply_tensors"] = lambda self, tensors, states, settings, ctx: tensors
    with pytest.raises(TypeError, match=rf"{method}.*\(tensors, states, settings, ctx\).*ctx\.params"):
        type("Old", (tz.Transform,), body)


def test_old_tensorwise_methods_are_refused():
    def old(self, tensor, param, grad, loss, state, setting):
        return tensor

    with pytest.raises(TypeError, match=r"apply_tensor.*\(tensor, state, setting, ctx, i\)"):
        type("Old", (tz.TensorwiseTransform,), {"apply_tensor": old})


def test_tensorwise_gets_position_and_state():
    class AddPrevious(tz.TensorwiseTransform):
        STATE_KEYS = {"prev": "like_param"}

        def init_state(self, tensor, setting):
            return {"prev": torch.zeros_like(tensor)}

        def apply_tensor(self, tensor, state, setting, ctx, i):
            assert ctx.params[i].shape == tensor.shape
            out = tensor + state["prev"]
            state["prev"].copy_(tensor)
            return out

    a, b = _params((3,), (2,))
    out1 = tz.apply_transform(AddPrevious(), [torch.ones(3), torch.ones(2)], params=[a, b])
    out2 = tz.apply_transform(AddPrevious(), [torch.ones(3), torch.ones(2)], params=[a, b])
    mod = AddPrevious()
    first = tz.apply_transform(mod, [torch.ones(3), torch.ones(2)], params=[a, b])
    second = tz.apply_transform(mod, [torch.full((3,), 2.0), torch.full((2,), 2.0)], params=[a, b])
    torch.testing.assert_close(out1, out2)
    torch.testing.assert_close(first, [torch.ones(3), torch.ones(2)])
    torch.testing.assert_close(second, [torch.full((3,), 3.0), torch.full((2,), 3.0)])
