"""Fit a group of SIRENs of one architecture to their own sine waves, in one batched step.

Each run (`InrRunSpec`) fits sin(2 pi f x + phase) (`sine_wave`) on its signal set's coordinate
grid with full-batch Adam (PyTorch's update rule and defaults, its own learning rate) for its own
number of steps. The N networks live in one (N, P) tensor laid out as the zoo stores them; the
forward is `functional_forward` under `torch.func.vmap`, so every network takes its step at
once; a network whose steps are done stays frozen while the others go on.

Each run trains its SIREN with its own omega_0 (`InrRunSpec.omega_0`) and is stored as the
zoo's architecture (omega_0 = 1) with every sine layer's weights and bias multiplied by the run's
omega_0 (`omega_scale`): sin(omega_0 (W x + b)) = sin((omega_0 W) x + omega_0 b), so the stored
weights compute the trained function and alone carry its frequencies (with omega_0 kept in the
architecture, a weight's meaning would depend on a number the weights do not show).

Checkpoints: the zoo's `epochs` split each run's steps evenly, so checkpoint epoch e is taken
after round(e * steps / epochs) steps (0 before training, `epochs` at the end). Every checkpoint
is scored one network at a time through `functional_forward` on the CPU (`fit_mse`): the
recorded `train_loss` (grid) and `test_loss` (held-out coordinates) are exactly what
`Zoo.module(i)` computes against `sine_wave` of the stored `frequency` and `phase`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from zoo_bench.arch import Architecture, functional_forward
from zoo_bench.families import siren_with_omega
from zoo_bench.generate.datasets import SignalSet
from zoo_bench.generate.hyper import InrRunSpec
from zoo_bench.generate.trainer import GroupResult

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def sine_wave(x: torch.Tensor, frequency: float, phase: float) -> torch.Tensor:
    """The target sin(2 pi f x + phase) at coordinates x (n, 1), in float32 as fitted and
    scored (one definition, so a recorded loss is reproducible from the stored columns)."""
    return torch.sin(x * float(2 * math.pi * frequency) + float(phase))


def fit_mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of a fit, as the INR zoos record `train_loss` / `test_loss`."""
    return float(((pred - target) ** 2).mean())


def siren_init(arch: Architecture, gen: torch.Generator) -> torch.Tensor:
    """One SIREN's flat initial weights (Sitzmann et al.): first layer U(-1/in, 1/in), later
    layers U(-sqrt(6/in)/omega_0, sqrt(6/in)/omega_0); biases U(-1/sqrt(in), 1/sqrt(in)) as
    torch.nn.Linear (and the SIREN code) start them, so that units start at different phases."""
    omega = arch.layers[0].omega_0
    parts = []
    for i, la in enumerate(arch.layers):
        fan_in = la.fan_in
        bound = 1 / fan_in if i == 0 else math.sqrt(6 / fan_in) / omega
        w = torch.empty(la.weight_shape).uniform_(-bound, bound, generator=gen)
        b = torch.empty(la.bias_shape).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in),
                                               generator=gen)
        parts += [w.reshape(-1), b]
    return torch.cat(parts)


def omega_scale(arch: Architecture, omega_0: float) -> torch.Tensor:
    """(P,) factors that turn flat weights of `arch` trained with `omega_0` in its sine layers
    into weights of `arch` itself computing the same function: omega_0 / arch's omega_0 on
    every sine layer's weight and bias, 1 on the linear output layer."""
    parts = []
    for la in arch.layers:
        factor = omega_0 / la.omega_0 if la.kind == "sine" else 1.0
        parts.append(torch.full((la.n_params,), float(factor)))
    return torch.cat(parts)


def checkpoint_steps(runs: Sequence[InrRunSpec], epochs: int, checkpoints: Sequence[int]
                     ) -> np.ndarray:
    """Step after which each checkpoint of each run is taken: (K, N) integers."""
    return np.array([[round(e * r.steps / epochs) for r in runs] for e in checkpoints])


def predict_all(arch: Architecture, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Every network's output on shared coordinates: flat (N, P), x (n, in) -> (N, n, out)."""
    return torch.func.vmap(lambda p: functional_forward(arch, p, x, "sine"))(arch.unflatten(flat))


def train_inr_group(
    arch: Architecture,
    runs: Sequence[InrRunSpec],
    signal: SignalSet,
    epochs: int,
    checkpoints: Sequence[int],
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> GroupResult:
    """Fit `runs` (one stored architecture `arch`, one omega_0) together; the stored weights
    (omega_0 folded in, module docstring) and losses at each checkpoint (epochs; 0 is before
    training; none is allowed, e.g. to time training alone).

    `on_epoch(n)` is called once per zoo epoch (a tenth of the steps with 10 epochs, counted
    on the longest run) with the number of networks, for progress bars.
    """
    device = torch.device(device)
    omegas = {r.omega_0 for r in runs}
    if len(omegas) != 1:
        raise ValueError(f"one group trains one omega_0, got {sorted(omegas)}")
    net = siren_with_omega(arch, omegas.pop())  # the SIREN as trained
    scale = omega_scale(arch, net.layers[0].omega_0).numpy()  # (P,) trained -> stored
    keep = sorted(set(checkpoints))
    if keep and (keep[0] < 0 or keep[-1] > epochs):
        raise ValueError(f"checkpoints {keep} must lie within epochs 0..{epochs}")
    n, k = len(runs), len(keep)
    x_cpu = {"train": torch.from_numpy(np.array(signal.x_train)),
             "test": torch.from_numpy(np.array(signal.x_test))}
    targets = {split: [sine_wave(x, r.frequency, r.phase) for r in runs]
               for split, x in x_cpu.items()}
    y_train = torch.stack(targets["train"]).to(device)  # (N, n_train, 1)
    x_train = x_cpu["train"].to(device)
    flat = torch.stack([siren_init(net, torch.Generator().manual_seed(r.seed)) for r in runs])
    flat = flat.to(device).requires_grad_(True)
    lr = torch.tensor([r.learning_rate for r in runs], device=device)[:, None]
    last = torch.tensor([r.steps for r in runs], device=device)[:, None]
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    at = checkpoint_steps(runs, epochs, keep).reshape(k, n)
    flats = np.empty((k, n, arch.n_params), np.float32)
    longest = max(r.steps for r in runs)
    ticks = {round(e * longest / epochs) for e in range(1, epochs + 1)}
    b1, b2 = ADAM_BETAS
    for t in range(longest + 1):
        for slot, j in zip(*np.nonzero(at == t), strict=True):
            flats[slot, j] = flat[j].detach().cpu().numpy() * scale
        if t == longest:
            break
        pred = predict_all(net, flat, x_train)  # (N, n_train, 1)
        loss = ((pred - y_train) ** 2).mean(dim=(1, 2)).sum()  # each network's own MSE
        (g,) = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            m.lerp_(g, 1 - b1)
            v.lerp_(g * g, 1 - b2)
            step = t + 1
            denom = (v.sqrt() / math.sqrt(1 - b2**step)).add_(ADAM_EPS)
            active = (last > t).to(flat.dtype)  # networks past their steps stay as they are
            flat.sub_(m / denom * (lr * active / (1 - b1**step)))
        if on_epoch is not None and step in ticks:
            on_epoch(n)
    metrics = {f"{s}_loss": np.empty((k, n)) for s in ("test", "train")}
    for slot in range(k):
        for j in range(n):
            params = arch.unflatten(torch.from_numpy(flats[slot, j]))
            with torch.no_grad():
                for split, x in x_cpu.items():
                    pred = functional_forward(arch, params, x, "sine")
                    metrics[f"{split}_loss"][slot, j] = fit_mse(pred, targets[split][j])
    return GroupResult(flats, metrics, flat.detach().cpu().numpy() * scale)
