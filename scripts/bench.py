"""Speed benchmark of the training engine: seconds per run, FLOP per run, achieved GFLOP/s as a
fraction of the machine's measured fp32 matrix-multiply rate, the report grid's time
(extrapolated from the per-run medians), and how time grows with the number of training pairs.

    python scripts/bench.py [--device cpu|cuda] [--threads 1] [--repeats 3] [--models fcnn,resnet]

Runs the real framework (Hydra-composed configs, model families, engine.fit) on random pairs of the
real shapes: timing does not depend on pixel values. Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from mnist_pairs.config import resolve_device, use_channels_last
from mnist_pairs.data import Pairs
from mnist_pairs.engine import TrainSettings, evaluate, fit, objective, synchronize
from mnist_pairs.seeding import generator
from mnist_pairs.train import build_model

CONF = Path(__file__).resolve().parents[1] / "conf"
GRID = {  # runs per model in the report's grid (make benchmark)
    **{m: 45 for m in ("fcnn", "fcnn_dropout", "fcnn_bn", "fcnn_bn_dropout", "cnn3", "cnn4", "cnn3_bn", "cnn4_bn")},
    **{m: 10 for m in ("resnet", "siamese_cnn", "siamese_cnn_aux", "siamese_resnet", "siamese_resnet_aux")},
}


def random_pairs(n: int, device: torch.device, channels_last: bool) -> Pairs:
    g = torch.Generator().manual_seed(n)
    digits = torch.randint(0, 10, (n, 2), generator=g)
    x = torch.rand(n, 2, 14, 14, generator=g) * 255
    pairs = Pairs(x, (digits[:, 0] <= digits[:, 1]).long(), digits).to(device)
    return pairs.channels_last() if channels_last else pairs


def matmul_rate(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """Measured fp32 matrix-multiply GFLOP/s on this device and thread setting."""
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - tic) / 1e9


def one_run(model_name: str, device: torch.device, n_train: int, epochs: int, channels_last: str = "auto") -> tuple[float, float]:
    """(seconds, FLOP) of one run: ``epochs`` of training plus the final train and test evaluation."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", [f"model={model_name}"])
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    cl = use_channels_last(channels_last, model)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    train, test = random_pairs(n_train, device, cl), random_pairs(1000, device, cl)
    settings = TrainSettings(epochs=epochs, batch_size=250, eval_every_epoch=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    with FlopCounterMode(display=False) as step_counter:  # one training step (forward and backward)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark preset's workers use 1)")
    parser.add_argument("--workers", type=int, default=2, help="parallel workers assumed for the grid extrapolation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--models", default=",".join(GRID))
    parser.add_argument("--scaling", default="cnn3_bn,resnet", help="models timed at 1k, 4k, 16k training pairs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = matmul_rate(device)
    print(f"device {device} threads {args.threads}: fp32 matmul {peak:.1f} GFLOP/s (1024x1024, measured now)")
    print(f"{'model':20s} {'s/run':>8s} {'GFLOP/run':>10s} {'GFLOP/s':>8s} {'of matmul':>9s}")
    per_run = {}
    for name in args.models.split(","):
        one_run(name, device, 1000, 1)  # warm-up
        times, flop = [], 0.0
        for _ in range(args.repeats):
            seconds, flop = one_run(name, device, 1000, args.epochs)
            times.append(seconds)
        per_run[name] = statistics.median(times)
        rate = flop / per_run[name] / 1e9
        print(f"{name:20s} {per_run[name]:8.2f} {flop / 1e9:10.1f} {rate:8.1f} {rate / peak:9.0%}")
    grid = sum(GRID.get(m, 0) * s for m, s in per_run.items())
    print(f"report grid ({sum(GRID[m] for m in per_run if m in GRID)} runs): {grid:.0f} s of runs, "
          f"extrapolated {grid / args.workers / 60:.1f} min on {args.workers} workers (job overhead not included)")
    for name in args.scaling.split(","):
        row = [f"{n // 1000}k: {one_run(name, device, n, max(1, args.epochs // 5))[0] * 5:.1f} s" for n in (1000, 4000, 16000)]
        print(f"scaling {name} (s/run, from {max(1, args.epochs // 5)} epochs x 5): " + ", ".join(row))


if __name__ == "__main__":
    main()
