"""The data path through the real torchvision loader, on synthetic IDX files and on real MNIST."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_pairs.training.data import (
    RAW_FILES,
    CorruptDataError,
    DataNotFoundError,
    load_split,
    make_pairs,
    official_md5,
    prepare_split,
    resolve_root,
    sample_pairs,
)
from mnist_pairs.training.seeding import generator
from tests.conftest import make_synthetic_mnist, run_cli


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


def gzip_files(src: Path, dest: Path, cut: dict[str, int] | None = None) -> Path:
    """The IDX files of ``src``'s MNIST/raw gzipped into ``dest``/MNIST/raw; ``cut`` truncates
    some of the .gz files to that many bytes."""
    raw = dest / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in (src / "MNIST" / "raw").iterdir():
        if f.suffix != ".gz":
            with open(f, "rb") as fin, gzip.open(raw / (f.name + ".gz"), "wb") as fout:
                shutil.copyfileobj(fin, fout)
    for name, size in (cut or {}).items():
        (raw / name).write_bytes((raw / name).read_bytes()[:size])
    return dest


def test_a_gz_file_that_is_not_the_official_one_is_named_as_corrupt_and_nothing_is_unpacked(tmp_path):
    """Synthetic .gz files are not the official ones (their MD5s are torchvision's): corrupt, named."""
    root = gzip_files(
        make_synthetic_mnist(tmp_path / "src", n_train=20, n_test=10),
        tmp_path / "root",
        cut={"train-images-idx3-ubyte.gz": 100},
    )
    with pytest.raises(CorruptDataError) as info:
        load_split(str(root), "train", download=False)
    message = str(info.value)
    assert message.startswith(
        f"{root.resolve() / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'} is corrupt: its MD5 is "
    )
    assert "not found" not in message and "\n" not in message
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(
        f.name + ".gz" for f in (tmp_path / "src" / "MNIST" / "raw").iterdir()
    )


@pytest.mark.parametrize(
    ("name", "damage", "expected"),
    [
        ("train-images-idx3-ubyte", lambda b: b[: len(b) // 2], "bytes where its header announces"),
        ("train-labels-idx1-ubyte", lambda b: b[:8] + bytes([12]) + b[9:], "a label 12 outside 0-9"),
        ("t10k-images-idx3-ubyte", lambda b: b"\x00\x00\x08\x01" + b[4:], "not an MNIST IDX image file"),
        ("t10k-labels-idx1-ubyte", lambda b: b[:3], "shorter than an IDX header"),
    ],
)
def test_a_damaged_unpacked_file_is_named_as_corrupt(tmp_path, name, damage, expected):
    root = make_synthetic_mnist(tmp_path, n_train=20, n_test=10)
    path = root / "MNIST" / "raw" / name
    path.write_bytes(damage(path.read_bytes()))
    split = "train" if name.startswith("train") else "test"
    with pytest.raises(CorruptDataError) as info:
        load_split(str(root), split, download=False)
    assert str(info.value).startswith(f"{path.resolve()} is corrupt: ") and expected in str(info.value), str(info.value)


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    root = make_synthetic_mnist(tmp_path, n_train=20, n_test=10)
    other = make_synthetic_mnist(tmp_path / "other", n_train=30, n_test=10)
    shutil.copy(other / "MNIST" / "raw" / "train-labels-idx1-ubyte", root / "MNIST" / "raw")
    with pytest.raises(CorruptDataError, match="holds 20 images and train-labels-idx1-ubyte 30 labels"):
        prepare_split(str(root), "train", download=False)


def test_a_missing_root_is_not_created(tmp_path):
    with pytest.raises(DataNotFoundError):
        prepare_split(str(tmp_path / "typo"), "train", download=False)
    assert not (tmp_path / "typo").exists()


def test_a_read_only_root_is_unpacked_into_the_cache_not_in_place(tmp_path):
    """A read-only folder holding only .gz files (a shared data folder) is never written to; the
    files are unpacked into the cache. Synthetic .gz files are refused on their MD5, before
    anything is unpacked; real MNIST goes through (test_real_gz_files_are_checked_and_unpacked_atomically)."""
    shared = gzip_files(make_synthetic_mnist(tmp_path / "src", n_train=20, n_test=10), tmp_path / "shared")
    raw = shared / "MNIST" / "raw"
    raw.chmod(0o555)
    try:
        assert resolve_root(shared, cache_dir=tmp_path / "cache") == (tmp_path / "cache").resolve()
        with pytest.raises(CorruptDataError, match=f"^{raw.resolve() / 'train-images-idx3-ubyte.gz'} is corrupt"):
            load_split(str(shared), "test", download=False, cache_dir=str(tmp_path / "cache"))
    finally:
        raw.chmod(0o755)
    assert not list((tmp_path / "cache").rglob("*-ubyte"))  # nothing unpacked from a file that failed its check
    assert resolve_root(shared, cache_dir=tmp_path / "cache") == shared.resolve()  # writable: used in place


def test_a_corrupt_file_is_one_clear_error_on_the_command_line(tmp_path):
    root = gzip_files(make_synthetic_mnist(tmp_path / "src", n_train=20, n_test=10), tmp_path / "root")
    done = run_cli(f"data.root={root}", "data.download=false", f"output_root={tmp_path / 'out'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip().splitlines()[-1].startswith(f"error: {root.resolve() / 'MNIST' / 'raw'}/t")
        and "is corrupt" in done.stderr
    )
    assert not (tmp_path / "out").exists()  # checked before Hydra makes the run's folder


@pytest.mark.slow
def test_real_gz_files_are_checked_and_unpacked_atomically(real_root, tmp_path):
    """The four official .gz files: a truncated copy is named as corrupt; whole ones are unpacked
    (into the cache when the folder is read-only); an unpacked file cut short by a killed unpacking
    is noticed and unpacked again from its .gz, never read."""
    gz = sorted((real_root / "MNIST" / "raw").glob("*.gz"))
    assert len(gz) == 4
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in gz:
        shutil.copy(f, raw)
    whole = (raw / "train-images-idx3-ubyte.gz").read_bytes()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(
        CorruptDataError, match=f"^{raw.resolve() / 'train-images-idx3-ubyte.gz'} is corrupt: its MD5 is"
    ):
        load_split.__wrapped__(str(tmp_path / "root"), "train", False, None)
    assert not (raw / "train-images-idx3-ubyte").exists() and not list(raw.glob("*.part"))

    (raw / "train-images-idx3-ubyte.gz").write_bytes(whole)
    raw.chmod(0o555)
    try:
        images, labels = load_split.__wrapped__(str(tmp_path / "root"), "train", False, str(tmp_path / "cache"))
    finally:
        raw.chmod(0o755)
    assert images.shape == (60_000, 14, 14) and labels.shape == (60_000,)
    cached = tmp_path / "cache" / "MNIST" / "raw"
    assert sorted(p.name for p in cached.iterdir()) == sorted(f.name[:-3] for f in gz)  # unpacked, not copied
    assert not list(raw.glob("*-ubyte"))  # the read-only folder was not written to

    (cached / "train-images-idx3-ubyte").write_bytes(
        (cached / "train-images-idx3-ubyte").read_bytes()[:1000]
    )  # a killed unpacking
    raw.chmod(0o555)
    try:
        again, _ = load_split.__wrapped__(str(tmp_path / "root"), "train", False, str(tmp_path / "cache"))
    finally:
        raw.chmod(0o755)
    assert torch.equal(again, images) and (cached / "train-images-idx3-ubyte").stat().st_size == 47_040_016


def test_the_checksums_of_the_four_official_files_are_known():
    assert sorted(official_md5()) == sorted(f"{name}.gz" for pair in RAW_FILES.values() for name in pair)
    assert official_md5()["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"  # MNIST's published MD5


@pytest.mark.slow
def test_real_mnist_splits_and_pairs(real_root):
    train_images, train_labels = load_split(str(real_root), "train")
    test_images, _ = load_split(str(real_root), "test")
    assert train_images.shape == (60_000, 14, 14) and test_images.shape == (10_000, 14, 14)
    assert train_images.min() >= 0 and train_images.max() <= 255
    assert np.bincount(train_labels.numpy()).tolist()[:2] == [5923, 6742]  # the official label counts
    shares = []
    for seed in range(10):
        train, test = make_pairs(str(real_root), 1000, 1000, generator(seed, "data"))
        assert torch.equal(train.target, (train.digits[:, 0] <= train.digits[:, 1]).long())
        shares += [train.target.float().mean().item(), test.target.float().mean().item()]
    assert 0.53 < np.mean(shares) < 0.57  # P(first <= second) = 0.55 for uniform digits
