"""Turn a tuning sweep (experiment=tune / tune_lr) into a config the benchmark can use.

The best run is read from the sweep's records by validation accuracy alone (the same objective
the Optuna sweeper maximised; test metrics are never read here). Its config is compared with the
plain composition of its model, and every key that differs (the tuned values and the training
regime of the preset) is written to ``conf/tuned/<name>.yaml``, a ``# @package _global_`` file
selected with ``tuned=<name>``.

    python -m mnist_pairs.tune outputs/tune/siamese_lenet_mlp-none [--name NAME] [--out-dir conf/tuned]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from mnist_pairs.config import CONF_DIR, compose_config
from mnist_pairs.results import records
from mnist_pairs.results.records import flatten

# Keys a tuned config never carries: where and how a run ran, which seed, what it monitored, and
# the test set's size (tuning draws no test pairs; the benchmark's protocol sets it).
NOT_TUNED = {*records.NON_IDENTITY_KEYS, "seed", "train.eval_every_epoch", "train.eval_interval", "data.n_test"}


def tuning_objective(record: records.RunRecord) -> float | None:
    """What a tuning sweeper (experiment=tune) maximises: the validation accuracy, and nothing
    computed from the test pairs. None without validation pairs or when the run did not finish."""
    return (record["metrics"] or {}).get("val_acc")


def mean_objective(done: list[records.RunRecord]) -> float | None:
    """A job's tuning objective: the mean of its seeds' objectives (a tuning preset may give each
    trial several seeds, ``device.seed_batch``, each with its own training/validation split), or
    None when a seed has none (it did not finish: the trial counts as failed)."""
    values = [tuning_objective(r) for r in done]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def best_run(sweep_dir: Path) -> tuple[Path, records.RunRecord, float, int]:
    """(run folder, record, objective, seeds) of the best trial: the highest validation accuracy,
    averaged over the trial's seeds when a trial ran several (``device.seed_batch``: the seed=<n>
    folders of one trial's folder), as the Optuna sweeper maximised it. Ties go to the trial the
    sweeper reported (its optimization_results.yaml: the first trial with the best value), else to
    the earliest finished."""
    trials: dict[Path, list[tuple[Path, records.RunRecord]]] = {}
    for path in sorted(sweep_dir.rglob(records.RECORD_FILE)):
        rec = records.read_record(path)
        trials.setdefault(path.parent.parent, []).append((path, rec))
    candidates = []
    for runs in trials.values():
        objective = mean_objective([rec for _, rec in runs])  # what the trial returned to the sweeper
        if all(rec["status"] == "ok" for _, rec in runs) and objective is not None:
            finished = max(rec["finished_at"] for _, rec in runs)
            candidates.append((-objective, finished, runs[0][0], runs[0][1], len(runs)))
    if not candidates:
        raise SystemExit(f"error: no finished run with a validation accuracy (data.n_val > 0) under {sweep_dir}")
    candidates.sort(key=lambda c: c[:2])
    best = [c for c in candidates if c[0] == candidates[0][0]]
    results = sweep_dir / "optimization_results.yaml"
    if results.is_file():
        params = OmegaConf.load(results).get("best_params") or {}
        chosen = [
            c
            for c in best
            if all(OmegaConf.select(OmegaConf.create(c[3]["config"]), k) == v for k, v in params.items())
        ]
        best = chosen or best
    objective, _, path, rec, n_seeds = best[0]
    return path.parent, rec, -objective, n_seeds


def not_tuned(key: str) -> bool:
    return any(key == n or key.startswith(f"{n}.") for n in NOT_TUNED)


def export(sweep_dir: Path, name: str | None = None, out_dir: Path = CONF_DIR / "tuned") -> Path:
    """``<out_dir>/<name>.yaml``, a ``# @package _global_`` file of every key where the best trial's
    config differs from its ``model=<model>`` alone. Without early stopping the validation split is
    dropped: it only served the choice."""
    _run_dir, rec, objective, n_seeds = best_run(sweep_dir)
    n_runs = sum(1 for _ in sweep_dir.rglob(records.RECORD_FILE))
    name = name or sweep_dir.name
    plain = flatten(OmegaConf.to_container(compose_config(f"model={rec['model']}"), resolve=True))
    values = {k: v for k, v in flatten(rec["config"]).items() if plain.get(k, object()) != v and not not_tuned(k)}
    if not rec["config"]["train"].get("early_stop_patience"):
        values.pop("data.n_val", None)
    seeds = f"seed {rec['seed']}" if n_seeds == 1 else f"the mean over {n_seeds} seeds, each its own split"
    header = (
        f"# Tuned by {sweep_dir} ({n_runs} runs) on {datetime.now(timezone.utc):%Y-%m-%d}: the trial with the best\n"
        f"# validation accuracy, {objective:.4f} on {rec['config']['data']['n_val']} held-out training pairs\n"
        f"# ({seeds}; the test pairs were not used). Use: model={rec['model']} tuned={name}\n"
    )
    nested = OmegaConf.to_yaml(
        OmegaConf.from_dotlist([f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in values.items()])
    )
    text = f"# @package _global_\n{header}{nested}".encode()
    return records.write_atomically(out_dir / f"{name}.yaml", lambda f: f.write(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="the tuning sweep's folder (outputs/tune/<model>-<augment>)")
    parser.add_argument("--name", help="the tuned config's name (default: the folder's name)")
    parser.add_argument(
        "--out-dir", type=Path, default=CONF_DIR / "tuned", help="where <name>.yaml goes (default: conf/tuned)"
    )
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        raise SystemExit(f"error: sweep folder {args.sweep_dir} does not exist")
    print(export(args.sweep_dir, args.name, args.out_dir))


if __name__ == "__main__":
    main()
