"""``mnist_pairs.records`` is ``mnist_pairs.results.records`` (the name the analysis imports)."""

import sys

from mnist_pairs.results import records

sys.modules[__name__] = records
