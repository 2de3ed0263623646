"""``mnist_pairs.compose`` is ``mnist_pairs.config.compose`` (the name the analysis imports)."""

import sys

from mnist_pairs.config import compose

sys.modules[__name__] = compose
