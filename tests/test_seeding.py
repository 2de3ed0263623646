"""What a seed draws is pinned, and tied to seeding.DRAWS_VERSION, which is part of every run's
identity: a change of code that re-draws a seed's pairs, initialisation, shuffling or augmentation
fails here until the version is bumped (and then changes every identity, so a resumed sweep redoes
its runs instead of mixing records of the old draws and the new)."""

from __future__ import annotations

import pytest
import torch

from mnist_pairs.config import compose_config
from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.models import build_model
from mnist_pairs.results import records
from mnist_pairs.training.data import make_pairs
from mnist_pairs.training.engine import batch_order
from mnist_pairs.training.seeding import DRAWS_VERSION, STREAMS, generator, stream_seed

SEED = 7
# The draws of seed 7 under each DRAWS_VERSION; bump the version and add its draws here.
PINNED = {
    1: {
        "stream_seeds": {
            "data": 4474668368857168768,
            "init": 793649810351256391,
            "shuffle": 2167195396090509626,
            "augment": 7443599362348754078,
        },
        "first_uniforms": {
            "data": [0.9640693068504333, 0.29408735036849976, 0.7514773011207581],
            "init": [0.48745250701904297, 0.520001232624054, 0.8854421377182007],
            "shuffle": [0.8043359518051147, 0.6763601899147034, 0.6127325892448425],
            "augment": [0.6989253759384155, 0.17054355144500732, 0.8603616952896118],
        },
        "synthetic_pairs": {"train": [[9, 7], [1, 3], [1, 9], [5, 6], [5, 7]], "test": [[8, 8], [1, 4], [9, 3]]},
        "first_epoch_order": [8, 1, 5, 9, 4, 7, 0, 3, 2, 6],
        "fcnn_first_weights": [-0.0012674882309511304, 0.0020204295869916677, 0.03893553465604782],
    },
}
REAL_MNIST_PAIRS = {1: {"train": [[1, 7], [8, 7], [0, 7], [9, 1], [2, 4]], "test": [[6, 1], [6, 1], [3, 5]]}}


def draws(root: str) -> dict:
    """The first draws of seed SEED: each stream, its pairs on ``root``, an epoch's order, a model's
    initialisation (the ``init`` stream seeds torch's global generator, as mnist_pairs.train does)."""
    train, test = make_pairs(root, 5, 3, generator(SEED, "data"), download=False)
    torch.manual_seed(stream_seed(SEED, "init"))
    model = build_model(compose_config("model=fcnn").model)
    return {
        "stream_seeds": {s: stream_seed(SEED, s) for s in STREAMS},
        "first_uniforms": {s: torch.rand(3, generator=generator(SEED, s)).tolist() for s in STREAMS},
        "synthetic_pairs": {"train": train.digits.tolist(), "test": test.digits.tolist()},
        "first_epoch_order": batch_order(
            10, TrainSettings(batch_size=10), generator(SEED, "shuffle"), torch.device("cpu")
        )[0].tolist(),
        "fcnn_first_weights": model.net[1][0].weight[0, :3].tolist(),
    }


def test_what_a_seed_draws_is_pinned_to_the_draws_version(synthetic_root):
    assert DRAWS_VERSION in PINNED, f"DRAWS_VERSION is {DRAWS_VERSION}: pin its draws in PINNED"
    assert draws(str(synthetic_root)) == PINNED[DRAWS_VERSION], (
        "what a seed draws changed: bump mnist_pairs.training.seeding.DRAWS_VERSION (part of every run's identity) "
        "and pin the new draws"
    )


@pytest.mark.slow
def test_the_pairs_of_a_seed_on_real_mnist_are_pinned(real_root):
    train, test = make_pairs(str(real_root), 5, 3, generator(SEED, "data"), download=False)
    assert {"train": train.digits.tolist(), "test": test.digits.tolist()} == REAL_MNIST_PAIRS[DRAWS_VERSION]


def test_the_draws_version_is_part_of_a_runs_identity(monkeypatch):
    config = {"seed": 0, "model": {"name": "x"}, "device": {"type": "cpu"}}
    assert records.config_hash(config) == "e07ff402228d4e37"  # version 1: the hash every record so far was written with
    monkeypatch.setattr(records, "DRAWS_VERSION", 2)
    assert records.config_hash(config) != "e07ff402228d4e37"
