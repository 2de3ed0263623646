"""Score a saved run's model (``train.save_model=true``) on any pairs: its own test pairs by
default, or those of another seed or size.

    python -m mnist_pairs.evaluate <run_dir> [seed=N] [data.n_test=N] [data.root=...] [device.type=cpu]

Prints the accuracy and the confusion counts (true class x predicted class; class 1: the first
digit is <= the second), beside the record's own test accuracy. The pairs are drawn as a run of
that seed draws them (``mnist_pairs.training.run.load_pairs``: the seed's data stream, the run's pixel
scaling), so ``seed=`` gives pairs the model never saw in training or testing."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_pairs.config.checks import fail, validate
from mnist_pairs.results.runs import LoadedRun, load_run
from mnist_pairs.training.data import DataError
from mnist_pairs.training.device import resolve_device
from mnist_pairs.training.engine import score
from mnist_pairs.training.run import load_pairs

OVERRIDABLE = ("seed", "data.n_test", "data.root", "data.download", "data.cache_dir", "device.type")
USAGE = "usage: python -m mnist_pairs.evaluate <run_dir> [" + "=... ".join(OVERRIDABLE) + "=...]"


def pairs_config(run_config: DictConfig, overrides: list[str]) -> DictConfig:
    """The run's config with ``key=value`` overrides of OVERRIDABLE keys, validated; on this
    machine's device (``device.type=auto``) unless told otherwise."""
    cfg = run_config.copy()
    with open_dict(cfg):
        cfg.device.type = "auto"
        cfg.tracking = {"backend": "none"}  # scoring logs nothing (and needs no MLflow)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or key not in OVERRIDABLE:
            fail(key, value if sep else None, f"an override key=value of one of {', '.join(OVERRIDABLE)}")
        with open_dict(cfg):
            OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, merge=False)
    if cfg.data.n_test < 1:
        fail("data.n_test", cfg.data.n_test, "an integer >= 1 (the pairs to score)")
    validate(cfg)
    return cfg


def confusion(predicted: torch.Tensor, target: torch.Tensor) -> list[list[int]]:
    """counts[true][predicted] of the two classes."""
    return [[int(((target == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]


def report(run: LoadedRun, cfg: DictConfig) -> list[str]:
    """The lines this command prints: what was scored, the accuracy, the confusion counts."""
    device = resolve_device(cfg.device.type)
    *_, test = load_pairs(cfg, device)
    scores = score(run.model.to(device), run.input(test), per_pair=True)
    counts = confusion(scores.predicted, test.target.cpu())
    right = counts[0][0] + counts[1][1]
    rec = run.record
    n_test, recorded = rec["config"]["data"]["n_test"], rec["metrics"].get("test_acc")
    own = cfg.seed == rec["seed"] and cfg.data.n_test == n_test
    on_record = f"{recorded:.4f} on its {n_test} test pairs" if recorded is not None else "none (no test pairs)"
    whose = " (the run's own)" if own else ""
    return [
        f"{rec['model']}/{rec['activation']} seed={rec['seed']} ({run.run_dir}): record test_acc {on_record}",
        f"{len(test)} test pairs of seed {cfg.seed}{whose}: accuracy {scores.acc:.4f} ({right}/{len(test)})",
        "confusion (rows: true class, columns: predicted 0, 1; class 1: first digit <= second)",
        f"  true 0: {counts[0][0]:6d} {counts[0][1]:6d}",
        f"  true 1: {counts[1][0]:6d} {counts[1][1]:6d}",
    ]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__ + "\n" + USAGE)
        sys.exit(0 if args else 2)
    try:
        run = load_run(Path(args[0]))
        cfg = pairs_config(run.config, args[1:])
        lines = report(run, cfg)
    # RunLoadError, ConfigError, too few images for the pairs, missing or corrupt MNIST
    except (ValueError, DataError) as error:
        sys.exit(f"error: {error}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
