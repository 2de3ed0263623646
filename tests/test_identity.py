"""Run identity is frozen: records written by the code before the orchestration layer's redesign
(``tests/frozen_records``) must be recognised as finished by today's sweeps, never trained again.

The frozen set was made at commit 13e99d4 on real MNIST, then stripped of machine paths (data.root,
output_root, host, pid are not part of a run's identity):

    python -m mnist_pairs.train -m experiment=smoke output_root=OUT                   # 58 records
    python -m mnist_pairs.train -m model=<each conf/model/*.yaml> seed=0 train.epochs=1 \\
        data.n_train=100 data.n_test=100 experiment_name=presets output_root=OUT      # and presets_authors
    python -m mnist_pairs.train -m [model=siamese_lenet_mlp] tuned=<each conf/tuned/*.yaml> ... \\
        experiment_name=tuned_<name>
    python -m mnist_pairs.train -m model=fcnn seed=0,1 augment=swap,affine optimizer=sgd \\
        train.lr_schedule=cosine data.scale=unit train.label_smoothing=0.1 device.vectorize=2 ... \\
        experiment_name=variants
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_pairs.results import records
from tests.conftest import CONF_DIR, make_synthetic_mnist, run_cli

FROZEN = Path(__file__).parent / "frozen_records"
TINY = ("seed=0", "train.epochs=1", "data.n_train=100", "data.n_test=100")


def preset_names(folder: str) -> str:
    return ",".join(
        sorted(
            p.relative_to(CONF_DIR / "model").with_suffix("").as_posix()
            for p in (CONF_DIR / "model" / folder).glob("*.yaml")
        )
    )


SWEEPS: dict[str, tuple[str, ...]] = {
    "smoke": ("experiment=smoke",),
    "presets": (f"model={preset_names('.')}", *TINY),
    "presets_authors": (f"model={preset_names('authors')}", *TINY),
    "tuned_resnet-lr": ("tuned=resnet-lr", *TINY),
    **{
        f"tuned_siamese_lenet_mlp-{t}": ("model=siamese_lenet_mlp", f"tuned=siamese_lenet_mlp-{t}", *TINY)
        for t in ("affine_swap", "augment_search", "none")
    },
    "variants": (
        "model=fcnn",
        "seed=0,1",
        "augment=swap,affine",
        "optimizer=sgd",
        "train.lr_schedule=cosine",
        "data.scale=unit",
        "train.label_smoothing=0.1",
        "device.vectorize=2",
        *TINY[1:],
    ),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic MNIST large enough for the smoke grid's 250 test pairs (data.root is no identity key)."""
    return make_synthetic_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=600)


def frozen(folder: Path) -> dict[str, str]:
    """Run folder (relative) -> the record's bytes."""
    return {str(p.parent.relative_to(folder)): p.read_text() for p in sorted(folder.rglob(records.RECORD_FILE))}


def test_every_frozen_folder_has_its_sweep():
    assert sorted(p.name for p in FROZEN.iterdir() if p.is_dir()) == sorted(SWEEPS)


def test_frozen_hashes_are_recomputed_from_their_configs():
    for path in FROZEN.rglob(records.RECORD_FILE):
        record = json.loads(path.read_text())
        assert records.config_hash(record["config"]) == record["config_hash"], path


@pytest.mark.parametrize("experiment", sorted(SWEEPS))
def test_a_sweep_over_frozen_records_trains_nothing(experiment, tmp_path, data_root):
    shutil.copytree(FROZEN / experiment, tmp_path / experiment)
    before = frozen(tmp_path / experiment)
    overrides = [*SWEEPS[experiment], f"experiment_name={experiment}"]
    if experiment == "smoke":
        overrides.pop()  # the preset names its own folder
    done = run_cli("-m", *overrides, f"output_root={tmp_path}", f"data.root={data_root}", "data.download=false")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert f"0 ok, 0 failed, 0 diverged, {len(before)} already done" in out, out[-3000:]
    assert frozen(tmp_path / experiment) == before, "no record rewritten, none added"
