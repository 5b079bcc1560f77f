"""torch.distributed.checkpoint with Modular: ``get_optimizer_state_dict`` /
``set_optimizer_state_dict`` (and ``dcp.save`` / ``dcp.load``) -> a NEW model and optimizer ->
the resumed run is bitwise equal to the uninterrupted one. Single process, plus FSDP2 on 2 ranks.

The chain (``dist_helpers.dcp_chain``) has module global state (``Alternate``'s step counter, which DCP
only keeps because ``Modular.state_dict`` also puts the global state in every param group)
and state created after the first step (the second ``Alternate`` branch, ZClip's statistics
after warm-up), which a ``dcp.load`` template made from a fresh optimizer lacks
(``dist_helpers.match_checkpoint`` adds it).
"""
from __future__ import annotations

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    get_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)

import torchzero as tz
from dist_fixtures import two_ranks  # noqa: F401 (fixture)
from dist_helpers import DCP_SPLIT, DCP_STOP, dcp_chain, make_model, match_checkpoint, train

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")


def build():
    model = make_model()
    return model, tz.Modular(model.parameters(), *dcp_chain())


def uninterrupted(stop: int = DCP_STOP):
    model, opt = build()
    train(model, opt, stop=stop)
    return model, opt


def assert_bitwise(model, want):
    for (name, p), (_, q) in zip(model.named_parameters(), want.named_parameters()):
        assert torch.equal(p, q), f"{name} differs from the uninterrupted run"


def test_get_set_optimizer_state_dict_resumes_bitwise():
    want, want_opt = uninterrupted()
    model, opt = build()
    train(model, opt, stop=DCP_SPLIT)
    osd = get_optimizer_state_dict(model, opt)
    assert set(osd) == {"state", "param_groups"}  # DCP's layout: names instead of indices, no other keys
    assert "conv.weight" in osd["state"] and all(g["torchzero"]["global_state"] == {"1": {"step": DCP_SPLIT}} for g in osd["param_groups"])
    msd = {k: v.clone() for k, v in model.state_dict().items()}
    model, opt = build()
    model.load_state_dict(msd)
    set_optimizer_state_dict(model, opt, osd)
    assert opt.chain.modules[1].global_state == {"step": DCP_SPLIT}
    train(model, opt, start=DCP_SPLIT, stop=DCP_STOP)
    assert_bitwise(model, want)
    got, ref = opt.state_dict(), want_opt.state_dict()
    assert got["param_groups"][0]["torchzero"] == ref["param_groups"][0]["torchzero"]
    for i, st in ref["state"].items():
        assert st.keys() == got["state"][i].keys()
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(got["state"][i][k])), f"state {i} {k}"


def test_flattened_optimizer_state_dict_resumes_bitwise():
    """``flatten_optimizer_state_dict=True`` (torchtitan's default): each parameter's state is
    one flat level, and the chain's record (here Alternate's step counter) comes back."""

    def build_flat():
        model = make_model()
        chain = [tz.m.ClipNorm(1.0), tz.m.Alternate(tz.m.LR(1.0), tz.m.LR(0.5)), tz.m.Adam(), tz.m.LR(1e-2)]
        return model, tz.Modular(model.parameters(), *chain)

    want, _ = build_flat()
    train(want, _, stop=DCP_STOP)
    model, opt = build_flat()
    train(model, opt, stop=DCP_SPLIT + 1)  # an odd step count: Alternate is mid-cycle
    options = StateDictOptions(flatten_optimizer_state_dict=True)
    osd = get_optimizer_state_dict(model, opt, options=options)
    assert "state.conv.weight.2.exp_avg" in osd and "param_groups.conv.weight.torchzero" in osd
    msd = {k: v.clone() for k, v in model.state_dict().items()}
    model, opt = build_flat()
    model.load_state_dict(msd)
    set_optimizer_state_dict(model, opt, osd, options=options)
    assert opt.chain.modules[1].global_state == {"step": DCP_SPLIT + 1}
    train(model, opt, start=DCP_SPLIT + 1, stop=DCP_STOP)
    assert_bitwise(model, want)


@pytest.mark.parametrize("match", [True, False], ids=["template-matched", "fresh-template"])
def test_dcp_save_load_resumes_bitwise(tmp_path, match):
    want, _ = uninterrupted()
    model, opt = build()
    train(model, opt, stop=DCP_SPLIT)
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=tmp_path)
    model, opt = build()
    msd, osd = get_state_dict(model, opt)
    if not match:
        # the template from a fresh optimizer has ZClip's warm-up state, which the checkpoint
        # (saved after warm-up) no longer has, and lacks what was created after step 1
        with pytest.raises(BaseException, match="Missing key in checkpoint"):
            dcp.load({"model": msd, "optim": osd}, checkpoint_id=tmp_path)
        return
    match_checkpoint(osd, tmp_path, dict(model.named_parameters()))
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=tmp_path)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    train(model, opt, start=DCP_SPLIT, stop=DCP_STOP)
    assert_bitwise(model, want)


def test_chain_record_is_in_every_saved_group_only():
    _, opt = uninterrupted(DCP_SPLIT)
    sd = opt.state_dict()
    records = [g["torchzero"] for g in sd["param_groups"]]
    assert records[0]["global_state"] == {"1": {"step": DCP_SPLIT}} and all(r == records[0] for r in records)
    assert set(sd) == {"state", "param_groups"} and opt.param_groups[0]["torchzero"] is None  # filled in the saved copy
    _, new = build()
    new.load_state_dict(sd)
    assert new.chain.modules[1].global_state == {"step": DCP_SPLIT} and new.param_groups[0]["torchzero"] is None


def test_earlier_layout_with_top_level_global_state_loads():
    _, opt = uninterrupted(DCP_SPLIT)
    sd = opt.state_dict()
    record = sd["param_groups"][0]["torchzero"]
    old = {"state": sd["state"], "param_groups": [{k: v for k, v in g.items() if k != "torchzero"} for g in sd["param_groups"]],
           "global_state": record["global_state"]}
    _, new = build()
    new.load_state_dict(old)
    assert new.chain.modules[1].global_state == {"step": DCP_SPLIT}


@pytest.mark.distributed
@pytest.mark.timeout(600)
def test_dcp_fsdp_2_ranks_resumes_bitwise(two_ranks):
    result = two_ranks.load("dcp.pt")
    for name, p in result["straight"].items():
        assert torch.equal(result["resumed"][name], p), f"{name} differs from the uninterrupted FSDP2 run"
