"""Independent random streams derived from one run seed, so that the pairs of a run do not depend
on the model (runs of different models with the same seed see the same pairs) and initialisation
does not depend on the data."""

from __future__ import annotations

import numpy as np
import torch

STREAMS = {"data": 0, "init": 1, "shuffle": 2, "augment": 3}


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` of run ``seed`` (numpy's SeedSequence mixing)."""
    state = np.random.SeedSequence([seed, STREAMS[stream]]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one stream of one run."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))
