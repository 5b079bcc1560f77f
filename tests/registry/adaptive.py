"""Registry entries for the adaptive family beside Adam: NAdam, RAdam, Adamax, Adadelta, RMSprop, Adagrad, Lion, Adan,
Rprop, Orthogonalize, Muon."""
from __future__ import annotations

import math

import torch

import torchzero as tz

from . import BadArg, Case

CASES = [
    Case("RMSprop", lambda: tz.m.RMSprop(), ("RMSprop",)),
    Case("RMSprop-centered", lambda: tz.m.RMSprop(0.9, centered=True), ("RMSprop",)),
    # centered with debiased or init="update" divides the first update by eps (its variance estimate
    # is exactly 0), which overflows float16: those combinations are tested in float64 in the unit tests
    Case(
        "RMSprop-debiased-amsgrad-pow3-inner",
        lambda: tz.m.RMSprop(0.9, 1e-6, debiased=True, amsgrad=True, pow=3, inner=tz.m.ClipNorm(1.0)),
        ("RMSprop",),
    ),
    Case("RMSprop-centered-amsgrad", lambda: tz.m.RMSprop(centered=True, amsgrad=True), ("RMSprop",)),
    Case("RMSprop-init-update", lambda: tz.m.RMSprop(init="update", pow=1.5), ("RMSprop",)),
    Case("Adagrad", lambda: tz.m.Adagrad(), ("Adagrad",)),
    Case("Adagrad-torch-options", lambda: tz.m.Adagrad(lr_decay=0.1, initial_accumulator_value=0.5, eps=1e-6, alpha=0.5), ("Adagrad",)),
    Case(
        "Adagrad-all-options",
        lambda: tz.m.Adagrad(pow=3, use_sqrt=False, divide=True, beta=0.9, decay=0.01, initial_accumulator_value=1.0, inner=tz.m.LR(0.5)),
        ("Adagrad",),
    ),
    Case("Lion", lambda: tz.m.Lion(), ("Lion",), lr=1e-3),
    Case("Adan", lambda: tz.m.Adan(), ("Adan",)),
    Case("NAdam", lambda: tz.m.NAdam(), ("NAdam",)),
    Case("NAdam-options", lambda: tz.m.NAdam((0.8, 0.99), 1e-6, 1e-2), ("NAdam",)),
    Case("RAdam", lambda: tz.m.RAdam(), ("RAdam",)),
    Case("RAdam-betas", lambda: tz.m.RAdam((0.5, 0.9), 1e-6), ("RAdam",)),
    Case("Adamax", lambda: tz.m.Adamax(), ("Adamax",)),
    Case("Adadelta", lambda: tz.m.Adadelta(0.95, 1e-5), ("Adadelta",), lr=1.0),
    Case("ASGD", lambda: tz.m.ASGD(lr=1e-2, t0=2), ("ASGD",), lr=1.0),
    Case("Adafactor", lambda: tz.m.Adafactor(lr=1e-2), ("Adafactor",), lr=1.0, tags=frozenset({"real-only"})),
    Case("Adafactor-options", lambda: tz.m.Adafactor(3e-2, -0.5, (1e-20, 1e-2), 2.0), ("Adafactor",), lr=1.0, tags=frozenset({"real-only"})),
    Case("Rprop", lambda: tz.m.Rprop(), ("Rprop",)),
    Case("Rprop-torch", lambda: tz.m.Rprop(1.5, 0.25, lb=0.01, ub=10, backtrack=False, alpha=0.5), ("Rprop",)),
    Case(
        "Orthogonalize",
        lambda: tz.m.Orthogonalize(),
        ("Orthogonalize",),
        stateful=False,
        target_grad=True,
        make_grad=lambda: tz.m.Orthogonalize(target="grad"),
    ),
    Case(
        "Orthogonalize-svd-dual-adjust",
        lambda: tz.m.Orthogonalize(3, adjust_lr=True, dual_norm_correction=True, method="svd"),
        ("Orthogonalize",),
        stateful=False,
        target_grad=True,
        make_grad=lambda: tz.m.Orthogonalize(3, adjust_lr=True, dual_norm_correction=True, method="svd", target="grad"),
    ),
    Case(
        "Orthogonalize-bfloat16-moonlight",
        lambda: tz.m.Orthogonalize(adjust_lr=True, ns_dtype="bfloat16", adjust_lr_fn="match_rms_adamw", eps=1e-6),
        ("Orthogonalize",),
        stateful=False,
    ),
    Case("Muon", lambda: tz.m.Muon(), ("Muon",)),
    Case("AdEMAMix", lambda: tz.m.AdEMAMix(), ("AdEMAMix",)),
    Case("SOAP", lambda: tz.m.SOAP(precond_freq=2), ("SOAP",)),
    Case("PSGDKron", lambda: tz.m.PSGDKron(), ("PSGDKron",)),
    # Prodigy takes lr itself (a multiplier of its own step size): the trailing LR(1.0) is neutral
    Case("Prodigy", lambda: tz.m.Prodigy(), ("Prodigy",), lr=1.0),
    Case("Prodigy-options", lambda: tz.m.Prodigy(0.5, (0.8, 0.99), 0.9, 1e-6, 0.01, True, True, 1e-4, 0.5, 1.05), ("Prodigy",), lr=1.0),
    Case(
        "PSGDKron-options",
        lambda: tz.m.PSGDKron(3, 0.5, 0.5, 0.2, 0.5, 1e-6, 0.8, True, (1.5, 3.0), 0.5, "float64", 7),
        ("PSGDKron",),
    ),
    Case("Shampoo", lambda: tz.m.Shampoo(update_freq=2), ("Shampoo",)),
    Case(
        "Shampoo-ema-blocks-newton-inner",
        lambda: tz.m.Shampoo(None, 0.9, 1e-6, 1, None, False, 3, False, 1e-6, tz.m.EMA(0.9), block_size=2, root_method="newton"),
        ("Shampoo",),
    ),
    Case("Shampoo-decay-graft", lambda: [tz.m.Shampoo(decay=0.99), tz.m.Graft([tz.m.Grad(), tz.m.Adam()])], ("Shampoo",)),
    Case(
        "SOAP-unmerged-summed-small-max_dim",
        lambda: tz.m.SOAP(0.9, 0.99, None, 1, False, 3, False, 1e-6, 0.1, 0.5, False),
        ("SOAP",),
    ),
    Case("AdEMAMix-warmups-beta1=0", lambda: tz.m.AdEMAMix((0.0, 0.99, 0.999), 5.0, 3, 2, 1e-6), ("AdEMAMix",)),
    Case("Muon-float64-options", lambda: tz.m.Muon(0.9, False, (3.0, -3.2, 1.2), 1e-6, 3, "match_rms_adamw", "float64"), ("Muon",)),
]

NAN, INF = math.nan, math.inf


def _bad(cls_name: str, arg: str, value, **fixed) -> BadArg:
    kwargs = {**fixed, arg: value}

    def make():
        return getattr(tz.m, cls_name)(**kwargs)

    return BadArg(f"{cls_name}-{arg}={value!r}", make, (ValueError, TypeError), rf"{cls_name}.*{arg}")


def _matrix(cls_name: str, args: dict[str, list]) -> list[BadArg]:
    return [_bad(cls_name, a, v) for a, vals in args.items() for v in vals]


_BETA = [-0.1, 1.0, 1.5, NAN, INF, "0.9", None]
_NONNEG = [-1e-8, NAN, INF, "0", None]
_BOOL = [1, 0, "yes", None]
_ANY_FINITE = [NAN, INF, -INF, "1", None]
_POW = [0, -2, NAN, INF, "2", None]
_INNER = ["Adam", 1, object()]

BAD_ARGS = [
    *_matrix(
        "RMSprop",
        {
            "smoothing": _BETA,
            "eps": _NONNEG,
            "centered": _BOOL,
            "debiased": _BOOL,
            "amsgrad": _BOOL,
            "pow": _POW,
            "init": ["ones", "Zeros", "", None, 0],
            "inner": _INNER,
        },
    ),
    *_matrix(
        "Adagrad",
        {
            "lr_decay": _NONNEG,
            "initial_accumulator_value": _NONNEG,
            "eps": _NONNEG,
            "alpha": _ANY_FINITE,
            "pow": _POW,
            "use_sqrt": _BOOL,
            "divide": _BOOL,
            "beta": [-0.1, 1.0, NAN, "0.9"],
            "decay": [-0.1, 1.0, 2.0, NAN, "0.1"],
            "inner": _INNER,
        },
    ),
    *_matrix("Lion", {"beta1": _BETA, "beta2": _BETA}),
    *_matrix("Adan", {"beta1": _BETA, "beta2": _BETA, "beta3": _BETA, "eps": _NONNEG}),
    *_matrix(
        "Rprop",
        {
            "nplus": [0.5, 0.99, -1.2, NAN, INF, "1.2", None],
            "nminus": [0, -0.5, 1.5, NAN, INF, "0.5", None],
            "lb": [-1e-6, NAN, INF, "0", None],
            "ub": [-1.0, NAN, "50", None],
            "backtrack": _BOOL,
            "alpha": [0, -1.0, NAN, INF, "1", None],
        },
    ),
    _bad("Rprop", "lb", 2.0, ub=1.0),
    *_matrix(
        "Orthogonalize",
        {
            "ns_steps": [0, -1, 2.5, "5", None, True],
            "adjust_lr": _BOOL,
            "dual_norm_correction": _BOOL,
            "method": ["svd2", "Newton-Schulz", "qr", None, 1],
            "target": ["gradient", None, 1],
            "ns_dtype": ["bf16", "float16", torch.float32, 1],
            "adjust_lr_fn": ["moonlight", "", 1],
            "ns_coefficients": [(1.0, 2.0), (1.0, NAN, 2.0), "abc", None],
            "eps": _NONNEG,
        },
    ),
    *_matrix(
        "Prodigy",
        {
            "lr": [0.0, -1.0, NAN, "1", None],
            "betas": [(0.9,), (1.0, 0.9), "ab", None],
            "beta3": [-0.1, 1.0, NAN, "0.9"],
            "eps": [0.0, -1.0, NAN, None],
            "weight_decay": _NONNEG,
            "use_bias_correction": _BOOL,
            "safeguard_warmup": _BOOL,
            "d0": [0.0, -1e-6, NAN, None],
            "d_coef": [0.0, NAN, None],
            "growth_rate": [0.5, NAN, "inf", None],
        },
    ),
    *_matrix(
        "PSGDKron",
        {
            "max_size": [-1, NAN, "10"],
            "max_skew": [-1.0, NAN, "1"],
            "init_scale": [0.0, -1.0, NAN, INF, None],
            "lr_preconditioner": [0.0, 1.0, NAN, "0.5", None],
            "beta_l": _BETA,
            "damping": _NONNEG,
            "momentum": _BETA,
            "nesterov": _BOOL,
            "max_amps": [(0.5, 1.0), (2.0, 1.0), (2.0,), "ab", None],
            "update_probability": [-0.1, 1.5, NAN, "1"],
            "dtype": ["float16", "bf16", torch.float32, None],
            "seed": [-1, 1.5, "0", None],
        },
    ),
    *_matrix(
        "Shampoo",
        {
            "decay": [0.0, -0.5, 1.5, NAN, "0.9"],
            "beta": [-0.1, 1.0, NAN, "0.9"],
            "reg": _NONNEG,
            "update_freq": [0, -1, 2.5, "10", None],
            "exp_override": [0, -2, 1.5, "2"],
            "merge_small": _BOOL,
            "max_dim": [0, 1.5, "2000", None],
            "precondition_1d": _BOOL,
            "adagrad_eps": _NONNEG,
            "block_size": [0, -1, 2.5, "64"],
            "root_method": ["svd", "Newton", None, 1],
        },
    ),
    *_matrix(
        "SOAP",
        {
            "beta1": _BETA,
            "beta2": _BETA,
            "shampoo_beta": [-0.1, 1.0, NAN, "0.95"],
            "precond_freq": [0, -1, 2.5, "10", None],
            "merge_small": _BOOL,
            "max_dim": [0, -5, 1.5, "2000", None],
            "precondition_1d": _BOOL,
            "eps": _NONNEG,
            "decay": [-0.1, 1.0, NAN, "0.1"],
            "alpha": [NAN, INF, "1", None],
            "bias_correction": _BOOL,
        },
    ),
    *_matrix(
        "AdEMAMix",
        {
            "betas": [(0.9, 0.999), (0.9, 0.999, 1.0), (-0.1, 0.9, 0.9), "abc", None],
            "alpha": [-1.0, NAN, INF, "2", None],
            "beta3_warmup": [0, -5, 2.5, "10"],
            "alpha_warmup": [0, 1.5, "10"],
            "eps": _NONNEG,
        },
    ),
    *_matrix(
        "Muon",
        {
            "momentum": _BETA,
            "nesterov": _BOOL,
            "ns_steps": [0, 2.5, None],
            "ns_dtype": ["bf16", torch.bfloat16],
            "adjust_lr_fn": ["none", 0],
            "ns_coefficients": [(1.0, 2.0), (1.0, INF, 2.0)],
            "eps": _NONNEG,
        },
    ),
]
