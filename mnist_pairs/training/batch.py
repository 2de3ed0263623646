"""Several seeds of one config in one job (``device.seed_batch``): trained at once
(``device.vectorize`` > 1, mnist_pairs.training.vectorize) or one after another
(``device.seeds_per_job``). Each seed gets its own record in its own folder, of the same form and
identity as a run alone."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.results import records
from mnist_pairs.results.runs import save_weights
from mnist_pairs.training.data import DataError
from mnist_pairs.training.device import keeps_torch_threads, set_up_device
from mnist_pairs.training.recording import Recorded, complete_record, new_record
from mnist_pairs.training.run import augmenter, epoch_logger, finished_or_set_aside, init_model, load_pairs, run
from mnist_pairs.training.seeding import generator
from mnist_pairs.training.vectorize import StackedModels, fit_stacked

log = logging.getLogger("mnist_pairs.train")


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` with another seed (the other keys, the seed batch included, unchanged)."""
    one = copy.deepcopy(cfg)
    with open_dict(one):
        one.seed = seed
    return one


def run_seeds_in_turn(cfgs: dict[int, DictConfig], run_dirs: dict[int, Path], variant: str) -> list[records.RunRecord]:
    """``run`` for each seed, one after another (``device.seeds_per_job``); a seed that fails has
    its ``failed`` record and the next seeds still run. SIGINT or SIGTERM stops the batch: the seed
    training gets an ``interrupted`` record (``run``), the seeds after it none (not started)."""
    out = []
    for seed, one in cfgs.items():
        try:
            out.append(run(one, run_dirs[seed], variant))
        except (ConfigError, DataError):
            raise  # nothing was written, and the other seeds would fail alike
        except Exception as error:
            log.error("run failed (recorded in %s): %s", run_dirs[seed], error)
            out.append(records.read_record(run_dirs[seed] / records.RECORD_FILE))
    return out


def run_seed_batch(cfg: DictConfig, run_dirs: dict[int, Path], variant: str = "") -> list[records.RunRecord]:
    """``run`` for several seeds of one config: with ``device.vectorize`` > 1 trained at once
    (mnist_pairs.training.vectorize), else one after another. One record per seed in its own
    folder, of the same form as a run alone. Seeds with a finished record are skipped; one seed
    left is simply ``run``."""
    cfgs = {seed: seed_config(cfg, seed) for seed in run_dirs}
    if cfg.device.vectorize == 1:
        return run_seeds_in_turn(cfgs, run_dirs, variant)  # run() validates each seed's config
    out: dict[int, records.RunRecord] = {}
    pending: dict[int, tuple[dict[str, Any], str]] = {}
    for seed, one in cfgs.items():
        checked = validate(one)
        assert checked is not None
        ident, done = finished_or_set_aside(checked.config, run_dirs[seed], checked.run.force)
        if done is not None:
            out[seed] = done
        else:
            pending[seed] = (checked.config, ident)
    if len(pending) == 1:
        (seed,) = pending
        out[seed] = run(cfgs[seed], run_dirs[seed], variant)
    elif pending:
        out.update(train_seed_batch({s: cfgs[s] for s in pending}, pending, run_dirs, variant))
    return [out[seed] for seed in run_dirs]


@keeps_torch_threads
def train_seed_batch(
    cfgs: dict[int, DictConfig],
    identities: dict[int, tuple[dict[str, Any], str]],
    run_dirs: dict[int, Path],
    variant: str,
) -> dict[int, records.RunRecord]:
    first_seed, first = next(iter(cfgs.items()))
    checked = validate(first, stages=("schema",))
    assert checked is not None
    device = set_up_device(checked.device)
    pairs = {seed: load_pairs(one, device) for seed, one in cfgs.items()}
    for seed in cfgs:  # only the first seed's folder gets Hydra's .hydra/: mark every one as started
        records.mark_started(run_dirs[seed], list(cfgs))
    recs = {seed: new_record(*identities[seed], variant, device) for seed in cfgs}
    with Recorded([(cfgs[seed], run_dirs[seed], recs[seed]) for seed in cfgs]) as recorded:
        models = {}
        for seed, one in cfgs.items():
            models[seed], pairs[seed] = init_model(one, device, pairs[seed])
            recs[seed]["n_params"] = sum(p.numel() for p in models[seed].parameters())
        stacked = StackedModels(list(models.values()))
        optimizer = instantiate(first.optimizer)(stacked.parameters())
        loggers = [epoch_logger(one) for one in cfgs.values()]
        log.info(
            "%s/%s seeds %s trained at once: %d parameters each, %s",
            first.model.name,
            first.activation.name,
            list(cfgs),
            recs[first_seed]["n_params"],
            recs[first_seed]["device_name"],
        )
        results = fit_stacked(
            stacked,
            optimizer,
            [p[0] for p in pairs.values()],
            [p[2] for p in pairs.values()],
            checked.train,
            [generator(s, "shuffle") for s in cfgs],
            lambda k, epoch, row: loggers[k](epoch, row),
            vals=[p[1] for p in pairs.values()],
            augment=[augmenter(checked.augment, seed) for seed in cfgs],
        )
        for (seed, (train, val, test)), result in zip(pairs.items(), results):
            if result.diverged:
                recs[seed].update(status="diverged", error=result.diverged)
            else:
                complete_record(recs[seed], models[seed], result, train, val, test)
                if checked.train.save_model:
                    save_weights(run_dirs[seed], models[seed], recs[seed])
            recorded.done.add(run_dirs[seed])  # complete, weights saved: an interruption leaves it be
    return recs
