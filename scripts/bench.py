"""Speed benchmark of the training engine: seconds per run, FLOP per run, achieved GFLOP/s as a
fraction of the machine's measured fp32 matrix-multiply rate, the report grid's time
(extrapolated from the per-run medians), how time grows with the number of training pairs, and,
on request, vectorised seeds against sequential runs and bf16 against fp32 (speed and accuracy).

    python scripts/bench.py [--device cpu|cuda] [--threads 1] [--repeats 3] [--models fcnn,resnet]
                            [--precision bf16] [--vectorize 10] [--precision-check 5]

Runs the real framework (Hydra-composed configs, model families, engine.fit, vectorize.fit_stacked)
on random pairs of the real shapes: timing does not depend on pixel values. --precision-check
trains on real MNIST (MNIST_PAIRS_DATA). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from itertools import product
from pathlib import Path

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from torch.utils.flop_counter import FlopCounterMode

from mnist_pairs.analysis.stats import welch
from mnist_pairs.config import compose_config
from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.models import build_model
from mnist_pairs.training.batch import seed_config
from mnist_pairs.training.data import Pairs
from mnist_pairs.training.device import resolve_device, use_channels_last
from mnist_pairs.training.engine import autocast, evaluate, fit, objective, synchronize
from mnist_pairs.training.run import run
from mnist_pairs.training.seeding import generator
from mnist_pairs.training.vectorize import StackedModels, fit_stacked


def benchmark_grid() -> Counter:
    """Runs per model in the benchmark preset (conf/experiment/benchmark.yaml), read from its grids."""
    cfg = compose_config("experiment=benchmark", hydra=True)
    parser = OverridesParser.create()
    runs: Counter = Counter()
    for grid in cfg.hydra.sweeper.grids:
        values = [
            [str(v) for v in parser.parse_override(f"{k}={v}").sweep_iterator()]
            if "," in str(v) or "(" in str(v)
            else [str(v)]
            for k, v in grid.items()
        ]
        for combo in product(*values):
            runs[dict(zip(grid.keys(), combo))["model"]] += 1
    return runs


def random_pairs(n: int, device: torch.device, channels_last: bool, seed: int = 0) -> Pairs:
    g = torch.Generator().manual_seed(n + 100_003 * seed)
    digits = torch.randint(0, 10, (n, 2), generator=g)
    x = torch.rand(n, 2, 14, 14, generator=g) * 255
    pairs = Pairs(x, (digits[:, 0] <= digits[:, 1]).long(), digits).to(device)
    return pairs.channels_last() if channels_last else pairs


def seconds_per_call(step: Callable[[], object], device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Wall time of one ``step()`` on ``device`` (synchronised), after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    tic = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    return (time.perf_counter() - tic) / repeats


def matmul_rate(device: torch.device, repeats: int = 20) -> float:
    """Measured fp32 matrix-multiply GFLOP/s on this device and thread setting (1024^3 on a CPU,
    8192^3 on a GPU: a size that fills the device; TF32 stays off, as in training)."""
    size = 8192 if device.type == "cuda" else 1024
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    return 2 * size**3 / seconds_per_call(lambda: a @ b, device, repeats) / 1e9


def conv_rate(channels: int, device: torch.device, repeats: int = 30) -> float:
    """GFLOP/s of one 5x5 'same' convolution of the ResNet's shape (batch 250, 14x14, channels_last)
    at ``channels`` in and out, forward plus both backward products: how the channel count alone
    moves the rate (a CPU's vector lanes hold 16 fp32 values)."""
    x = torch.randn(250, channels, 14, 14, device=device).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(channels, channels, 5, 5, device=device, requires_grad=True)
    b = torch.zeros(channels, device=device, requires_grad=True)

    def step() -> None:
        y = torch.nn.functional.conv2d(x, w, b, padding=2)
        y.backward(torch.ones_like(y))

    return 3 * 2 * 250 * channels**2 * 25 * 196 / seconds_per_call(step, device, repeats, warmup=5) / 1e9


def one_run(
    model_name: str, device: torch.device, n_train: int, epochs: int, precision: str = "fp32"
) -> tuple[float, float]:
    """(seconds, FLOP) of one run: ``epochs`` of training plus the final train and test evaluation."""
    cfg = compose_config(f"model={model_name}")
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    cl = use_channels_last("auto", model)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    train, test = random_pairs(n_train, device, cl), random_pairs(1000, device, cl)
    settings = TrainSettings(epochs=epochs, batch_size=250, eval_every_epoch=False, precision=precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    with FlopCounterMode(display=False) as step_counter, autocast(device, settings):  # one training step
        loss, _, _ = objective(model, train.x[:250], train.target[:250], train.digits[:250])
        loss.backward()
    with FlopCounterMode(display=False) as eval_counter:  # one evaluation of 1000 pairs
        evaluate(model, test)
    optimizer.zero_grad(set_to_none=True)
    steps = epochs * -(-n_train // 250)
    flop = step_counter.get_total_flops() * steps + eval_counter.get_total_flops() * (1 + n_train / 1000)
    synchronize(device)
    tic = time.perf_counter()
    fit(model, optimizer, train, test, settings, generator(0, "shuffle"))
    evaluate(model, train)
    evaluate(model, test)
    synchronize(device)
    return time.perf_counter() - tic, flop


def seeds_at_once(model_name: str, device: torch.device, k: int, epochs: int) -> tuple[float, float]:
    """(seconds for K seeds one after another, seconds for the same K seeds vectorised), each path
    warmed up by one epoch first (CUDA/cuDNN start-up and vmap's first call stay out of the times)."""
    cfg = compose_config(f"model={model_name}")

    def models_and_data() -> tuple[list[torch.nn.Module], list[Pairs]]:
        models, data = [], []
        for seed in range(k):
            torch.manual_seed(seed)
            model = build_model(cfg.model).to(device)
            cl = use_channels_last("auto", model)
            models.append(model.to(memory_format=torch.channels_last) if cl else model)
            data.append(random_pairs(1000, device, cl, seed))
        return models, data

    def both(epochs: int) -> tuple[float, float]:
        settings = TrainSettings(epochs=epochs, batch_size=250, eval_every_epoch=False)
        models, data = models_and_data()
        synchronize(device)
        tic = time.perf_counter()
        for seed, (model, train) in enumerate(zip(models, data)):
            fit(
                model,
                torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr),
                train,
                train,
                settings,
                generator(seed, "shuffle"),
            )
        synchronize(device)
        sequential = time.perf_counter() - tic
        models, data = models_and_data()
        stacked = StackedModels(models)
        synchronize(device)
        tic = time.perf_counter()
        fit_stacked(
            stacked,
            torch.optim.Adam(stacked.parameters(), lr=cfg.optimizer.lr),
            data,
            data,
            settings,
            [generator(seed, "shuffle") for seed in range(k)],
        )
        synchronize(device)
        return sequential, time.perf_counter() - tic

    both(1)
    return both(epochs)


def precision_check(models: list[str], n_seeds: int, device: str) -> None:
    """Real-MNIST test accuracy of bf16 against fp32 over ``n_seeds`` seeds (report protocol)."""
    print(f"bf16 against fp32 on real MNIST, {n_seeds} seeds each (mean test accuracy, SD; Welch's p; s/run):")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            acc, secs = {}, {}
            for precision in ("fp32", "bf16"):
                cfg = compose_config(
                    f"model={name}", f"train.precision={precision}", f"device={device}", "device.threads=0"
                )
                recs = [run(seed_config(cfg, s), Path(tmp) / name / precision / f"seed={s}") for s in range(n_seeds)]
                acc[precision] = [r["metrics"]["test_acc"] for r in recs]
                secs[precision] = statistics.median(r["train_time_s"] for r in recs)
            m = {p: (statistics.mean(v), statistics.stdev(v)) for p, v in acc.items()}
            w = welch(m["bf16"][0], m["bf16"][1], n_seeds, m["fp32"][0], m["fp32"][1], n_seeds)
            print(
                f"  {name:20s} fp32 {m['fp32'][0]:.4f} ({m['fp32'][1]:.4f})  bf16 {m['bf16'][0]:.4f} "
                f"({m['bf16'][1]:.4f})  "
                f"diff {w['diff']:+.4f} [{w['diff_ci_low']:+.4f}, {w['diff_ci_high']:+.4f}]  p {w['p']:.2f}  "
                f"s/run {secs['fp32']:.2f} -> {secs['bf16']:.2f}"
            )


def names(arg: str) -> list[str]:
    """A comma-separated option as a list ('' = none)."""
    return [name for name in arg.split(",") if name]


def main() -> None:
    grid_runs = benchmark_grid()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark preset's workers use 1)")
    parser.add_argument("--workers", type=int, default=2, help="parallel workers assumed for the grid extrapolation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--models", default=",".join(grid_runs))
    parser.add_argument(
        "--scaling", default="cnn3_bn,resnet", help="models timed at 1k, 4k, 16k training pairs ('' = none)"
    )
    parser.add_argument(
        "--conv-channels", default="12,16,32", help="time one ResNet-shaped conv at these channel counts ('' = none)"
    )
    parser.add_argument(
        "--vectorize", type=int, default=0, help="K > 1: also time K seeds vectorised against sequential"
    )
    parser.add_argument("--vectorize-models", default="cnn3_bn,siamese_cnn_aux,resnet")
    parser.add_argument(
        "--precision-check", type=int, default=0, metavar="SEEDS", help="bf16 against fp32 accuracy on real MNIST"
    )
    parser.add_argument("--precision-models", default="cnn3_bn,siamese_cnn_aux")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = matmul_rate(device)
    print(
        f"device {device} threads {args.threads}: fp32 matmul {peak:.1f} GFLOP/s (measured now); precision "
        f"{args.precision}"
    )
    print(f"{'model':20s} {'s/run':>8s} {'GFLOP/run':>10s} {'GFLOP/s':>8s} {'of matmul':>9s}")
    per_run = {}
    for name in names(args.models):
        one_run(name, device, 1000, 1, args.precision)  # warm-up
        times, flop = [], 0.0
        for _ in range(args.repeats):
            seconds, flop = one_run(name, device, 1000, args.epochs, args.precision)
            times.append(seconds)
        per_run[name] = statistics.median(times)
        rate = flop / per_run[name] / 1e9
        print(f"{name:20s} {per_run[name]:8.2f} {flop / 1e9:10.1f} {rate:8.1f} {rate / peak:9.0%}")
    grid = sum(grid_runs.get(m, 0) * s for m, s in per_run.items())
    print(
        f"benchmark grid ({sum(grid_runs[m] for m in per_run if m in grid_runs)} of {sum(grid_runs.values())} runs): "
        f"{grid:.0f} s of runs, extrapolated {grid / args.workers / 60:.1f} min on {args.workers} workers "
        "(per-epoch test evaluation and job overhead not included)"
    )
    channels = [int(c) for c in names(args.conv_channels)]
    if channels:
        print(
            "one 5x5 conv of the ResNet's shape (batch 250, 14x14, fwd+bwd; the report's ResNet has 12 channels): "
            + ", ".join(f"{c} ch {r:.1f} GFLOP/s ({r / peak:.0%})" for c in channels for r in [conv_rate(c, device)])
        )
    for name in names(args.scaling):
        row = [
            f"{n // 1000}k: {one_run(name, device, n, max(1, args.epochs // 5), args.precision)[0] * 5:.1f} s"
            for n in (1000, 4000, 16000)
        ]
        print(f"scaling {name} (s/run, from {max(1, args.epochs // 5)} epochs x 5): " + ", ".join(row))
    if args.vectorize > 1:
        print(
            f"vectorised seeds: {args.vectorize} seeds of {args.epochs} epochs, one after another vs at once "
            "(torch.func.vmap)"
        )
        for name in names(args.vectorize_models):
            sequential, together = seeds_at_once(name, device, args.vectorize, args.epochs)
            print(
                f"  {name:20s} sequential {sequential:7.2f} s  vectorised {together:7.2f} s  "
                f"speed-up {sequential / together:.2f}x"
            )
    if args.precision_check:
        precision_check(names(args.precision_models), args.precision_check, args.device)


if __name__ == "__main__":
    main()
