"""torchzero with DDP or FSDP2: a small MLP trained on several processes (gloo on the CPU).

Each rank trains on its share of every batch; DDP and FSDP2 average the gradients, so the
optimizer sees the gradient of the whole batch. The chain clips the GLOBAL gradient norm (with
FSDP2: the norm of all parameters across all shards, as ``torch.nn.utils.clip_grad_norm_``
on the unsharded model), clips each tensor's update norm against an EMA of its past norms (per
whole tensor, not per shard), then Adam and the learning rate. Only rank 0 prints the loss (the
mean over ranks).

    torchrun --nproc_per_node 2 examples/ddp_fsdp.py --mode fsdp
    torchrun --nproc_per_node 2 examples/ddp_fsdp.py --mode ddp --steps 100
    torchrun --nproc_per_node 2 examples/ddp_fsdp.py --mode fsdp --checkpoint /tmp/ckpt   # save with DCP at the end
"""
from __future__ import annotations

import argparse
import gc
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

import torchzero as tz


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth 4-D -> 1-D regression problem, the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, generator=g) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:] + 0.01 * torch.randn(n, 1, generator=g)
    return x, y


def make_optimizer(model: nn.Module, lr: float) -> tz.Modular:
    return tz.Modular(
        model.parameters(),
        tz.m.ClipNorm(1.0, dim="global", target="grad"),  # global norm, across all shards
        tz.m.ClipNormByEMA(0.99),                          # per whole tensor
        tz.m.Adam(),
        tz.m.LR(lr),
    )


def train(args: argparse.Namespace, rank: int, world: int) -> float:
    """Trains and returns the last loss of this rank; prints the mean loss on rank 0."""
    every = args.print_every or max(1, args.steps // 10)
    torch.manual_seed(0)  # the same initial model on every rank
    model = nn.Sequential(nn.Linear(4, args.hidden), nn.Tanh(), nn.Linear(args.hidden, args.hidden), nn.Tanh(), nn.Linear(args.hidden, 1))
    if args.mode == "ddp":
        model = nn.parallel.DistributedDataParallel(model)
    else:
        from torch.distributed.fsdp import fully_shard

        for layer in model:  # each layer its own FSDP group, then the root
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)  # the parameters are now DTensors sharded on dim 0
    opt = make_optimizer(model, args.lr)

    x, y = make_data(args.batch_size * 4)
    share = args.batch_size // world
    loss = torch.tensor(float("nan"))
    for step in range(1, args.steps + 1):
        start = ((step - 1) * args.batch_size) % len(x) + rank * share
        xb, yb = x[start : start + share], y[start : start + share]  # this rank's share of the batch
        loss = nn.functional.mse_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % every == 0 or step == args.steps:
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            if rank == 0:
                print(f"step {step:4d}  loss {mean.item() / world:.6f}", flush=True)

    if args.checkpoint:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(model, opt)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=args.checkpoint)
        if rank == 0:
            print(f"saved to {args.checkpoint}", flush=True)
    return loss.item()


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("ddp", "fsdp"), default="fsdp", help="DDP or FSDP2 (default: fsdp)")
    parser.add_argument("--steps", type=int, default=200, help="number of optimizer steps (default: 200)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size, split over ranks (default: 64)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the MLP (default: 64)")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate (default: 1e-2)")
    parser.add_argument("--print-every", type=int, default=None, help="print the loss every N steps (default: steps // 10)")
    parser.add_argument("--checkpoint", default=None, help="save model and optimizer there with torch.distributed.checkpoint at the end")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if "RANK" not in os.environ:
        parser.error("run it with torchrun, e.g. torchrun --nproc_per_node 2 examples/ddp_fsdp.py --mode fsdp")

    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.batch_size % world:
            parser.error(f"--batch-size ({args.batch_size}) must be divisible by the number of ranks ({world})")
        loss = train(args, rank, world)
        # free the model (DDP and FSDP modules hold the process group in reference cycles) before
        # the group is destroyed: freed later, at interpreter exit, gloo may abort the process
        gc.collect()
        dist.barrier()
        return loss
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
