"""The data path through the real torchvision loader, on synthetic IDX files and on real MNIST."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from mnist_pairs.data import DataNotFoundError, load_split, make_pairs, resolve_root, sample_pairs
from mnist_pairs.seeding import generator
from tests.conftest import make_synthetic_mnist


def test_loader_pools_synthetic_idx_to_14x14(synthetic_root):
    images, labels = load_split(str(synthetic_root), "train", download=False)
    assert images.shape == (600, 14, 14) and images.dtype == torch.float32
    assert labels.shape == (600,) and set(labels.tolist()) <= set(range(10))
    from torchvision.datasets import MNIST

    full = MNIST(str(synthetic_root), train=True, download=False).data[0].float()
    assert images[0, 3, 5] == pytest.approx(full[6:8, 10:12].mean().item())  # a 2x2 average


def test_pairs_follow_the_protocol(synthetic_root):
    images, labels = load_split(str(synthetic_root), "train", download=False)
    pairs = sample_pairs(images, labels, 250, generator(0, "data"))
    assert pairs.x.shape == (250, 2, 14, 14) and pairs.digits.shape == (250, 2)
    assert torch.equal(pairs.target, (pairs.digits[:, 0] <= pairs.digits[:, 1]).long())
    assert pairs.target[pairs.digits[:, 0] == pairs.digits[:, 1]].eq(1).all()  # equal digits: class 1
    # without replacement: the 500 images are distinct rows of the split
    flat = pairs.x.reshape(500, -1)
    matches = (flat[:, None, :] == images.reshape(1, 600, -1)).all(-1)
    assert matches.sum(1).eq(1).all() and matches.float().argmax(1).unique().numel() == 500
    with pytest.raises(ValueError, match="n=301 pairs need 602 distinct images"):
        sample_pairs(images, labels, 301, generator(0, "data"))


def test_pairs_are_a_pure_function_of_the_seed(synthetic_root):
    def pairs(seed):
        return make_pairs(str(synthetic_root), 100, 50, generator(seed, "data"), download=False)

    (a_train, a_test), (b_train, b_test), (c_train, _) = pairs(0), pairs(0), pairs(1)
    assert torch.equal(a_train.x, b_train.x) and torch.equal(a_test.digits, b_test.digits)
    assert not torch.equal(a_train.x, c_train.x)
    assert a_test.x.shape == (50, 2, 14, 14)


def test_pixel_scaling_options(synthetic_root):
    raw, _ = make_pairs(str(synthetic_root), 100, 10, generator(0, "data"), scale="raw", download=False)
    unit, _ = make_pairs(str(synthetic_root), 100, 10, generator(0, "data"), scale="unit", download=False)
    std, _ = make_pairs(str(synthetic_root), 100, 10, generator(0, "data"), scale="standard", download=False)
    assert raw.x.max() > 200 and torch.allclose(unit.x, raw.x / 255)
    assert abs(std.x.mean().item()) < 0.3 and 0.7 < std.x.std().item() < 1.3


def test_missing_data_gives_one_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_split(str(tmp_path / "nowhere"), "train", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "data.root=" in message and "MNIST_PAIRS_DATA" in message and "data.download=true" in message


def test_read_only_root_with_gz_files_is_copied_to_the_cache(tmp_path):
    src = make_synthetic_mnist(tmp_path / "src", n_train=20, n_test=10)
    shared = tmp_path / "shared" / "MNIST" / "raw"
    shared.mkdir(parents=True)
    for f in (src / "MNIST" / "raw").iterdir():
        with open(f, "rb") as fin, gzip.open(shared / (f.name + ".gz"), "wb") as fout:
            shutil.copyfileobj(fin, fout)
    shared.chmod(0o555)
    try:
        where = resolve_root(shared.parents[1], cache_dir=tmp_path / "cache")
    finally:
        shared.chmod(0o755)
    assert where == (tmp_path / "cache").resolve()
    assert sorted(p.name for p in (where / "MNIST" / "raw").iterdir()) == sorted(p.name for p in shared.iterdir())
    assert sorted(p.name for p in shared.iterdir()) == sorted(f.name + ".gz" for f in (src / "MNIST" / "raw").iterdir())
    # a writable root is used in place (torchvision unpacks there)
    assert resolve_root(shared.parents[1], cache_dir=tmp_path / "cache") == shared.parents[1].resolve()


@pytest.mark.slow
def test_real_mnist_splits_and_pairs(real_root):
    train_images, train_labels = load_split(str(real_root), "train")
    test_images, _ = load_split(str(real_root), "test")
    assert train_images.shape == (60_000, 14, 14) and test_images.shape == (10_000, 14, 14)
    assert 0 <= train_images.min() and train_images.max() <= 255
    assert np.bincount(train_labels.numpy()).tolist()[:2] == [5923, 6742]  # the official label counts
    shares = []
    for seed in range(10):
        train, test = make_pairs(str(real_root), 1000, 1000, generator(seed, "data"))
        assert torch.equal(train.target, (train.digits[:, 0] <= train.digits[:, 1]).long())
        shares += [train.target.float().mean().item(), test.target.float().mean().item()]
    assert 0.53 < np.mean(shares) < 0.57  # P(first <= second) = 0.55 for uniform digits
