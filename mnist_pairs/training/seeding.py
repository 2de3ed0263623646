"""Independent random streams derived from one run seed, so that the pairs of a run do not depend
on the model (runs of different models with the same seed see the same pairs) and initialisation
does not depend on the data.

``DRAWS_VERSION`` names what a seed draws (pairs, initialisation, shuffling, augmentation, dropout)
and is part of every run's identity (records.config_hash): a change of code that makes a seed draw
other numbers must bump it, so that a resumed sweep redoes its runs instead of mixing records of
the old draws with records of the new. tests/test_seeding.py pins the first draws of every stream
for each version and fails until the version is bumped."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

STREAMS = {"data": 0, "init": 1, "shuffle": 2, "augment": 3}
DRAWS_VERSION = 1  # bump with every change of what a seed draws (and pin the new draws in tests/test_seeding.py)


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` of run ``seed`` (numpy's SeedSequence mixing)."""
    state = np.random.SeedSequence([seed, STREAMS[stream]]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one stream of one run."""
    import torch  # here: records (which aggregation reads without torch) imports DRAWS_VERSION

    return torch.Generator().manual_seed(stream_seed(seed, stream))
