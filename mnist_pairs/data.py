"""MNIST through torchvision, 2x2 average pooled to 14x14, and the digit-pair sampling of the
course's ``generate_pair_sets`` (see PROTOCOL.md): ``idx = randperm(N)[:2n].view(n, 2)``,
target ``first <= second`` (equal digits are class 1)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SPLIT_SIZES = {"train": 60_000, "test": 10_000}
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SCALES = ("raw", "unit", "standard")
DEFAULT_CACHE = Path.home() / ".cache" / "mnist_pairs"


class DataNotFoundError(RuntimeError):
    """MNIST is neither on disk nor downloadable; the message says where we looked."""


@dataclass(frozen=True)
class Pairs:
    """``x`` [n, 2, 14, 14] float32 (the two images as channels), ``target`` [n] int64
    (1 when digit 1 <= digit 2), ``digits`` [n, 2] int64 (the two labels, for the auxiliary loss)."""

    x: torch.Tensor
    target: torch.Tensor
    digits: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device | str) -> "Pairs":
        return Pairs(self.x.to(device), self.target.to(device), self.digits.to(device))

    def channels_last(self) -> "Pairs":
        return Pairs(self.x.contiguous(memory_format=torch.channels_last), self.target, self.digits)


def _all_files(folder: Path, names: list[str]) -> bool:
    return all((folder / n).is_file() for n in names)


def _writable(folder: Path) -> bool:
    """Writable by its permission bits too: root passes os.access on a read-only (r-x) folder,
    and we must not unpack into a folder its owner marked read-only."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o200)


def resolve_root(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The root torchvision should read: ``root`` itself when it holds the unpacked IDX files or
    can unpack the official ``.gz`` files in place; otherwise a writable cache holding a copy of
    the ``.gz`` files (a read-only root, such as a shared data folder)."""
    root = Path(root).expanduser().resolve()
    raw = root / "MNIST" / "raw"
    idx_names = [n for pair in RAW_FILES.values() for n in pair]
    if _all_files(raw, idx_names):
        return root
    gz_names = [n + ".gz" for n in idx_names]
    if not _all_files(raw, gz_names) or _writable(raw):
        return root  # nothing to copy: torchvision unpacks in place or downloads
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else DEFAULT_CACHE
    cached_raw = cache / "MNIST" / "raw"
    cached_raw.mkdir(parents=True, exist_ok=True)
    for name in gz_names:
        target = cached_raw / name
        if not target.is_file() or target.stat().st_size != (raw / name).stat().st_size:
            tmp = target.with_suffix(".part")
            shutil.copyfile(raw / name, tmp)
            os.replace(tmp, target)
    return cache


def _missing_data_message(root: Path, download: bool, cause: BaseException | None) -> str:
    raw = root / "MNIST" / "raw"
    first_line = str(cause).strip().splitlines()[0] if cause else ""
    why = f"download failed: {type(cause).__name__}: {first_line}" if cause else "download=false"
    return (
        f"MNIST not found: looked for {', '.join(n for pair in RAW_FILES.values() for n in pair)} "
        f"(or their .gz) in {raw} ({why}). Point the project at a folder that holds MNIST/raw/ "
        f"with `data.root=/path/to/folder` or `export MNIST_PAIRS_DATA=/path/to/folder`"
        + ("" if download else ", or allow torchvision to download with `data.download=true`")
        + "."
    )


@contextlib.contextmanager
def _unpack_lock(root: Path) -> Iterator[None]:
    """Serialise torchvision's unpacking (or download) across the worker processes of a sweep,
    which otherwise read each other's half-written files. A no-op where the folder is read-only."""
    lock_dir = root / "MNIST"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        handle = open(lock_dir / ".unpack.lock", "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=8)
def load_split(root: str, split: str, download: bool = True, cache_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one split, 2x2 average pooled to [N, 14, 14] float32 in 0..255, and labels [N].

    Cached per process: a worker that runs many jobs reads the files once."""
    from torchvision.datasets import MNIST  # deferred: importing torchvision costs ~1 s

    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r}: allowed are {sorted(SPLIT_SIZES)}")
    where = resolve_root(root, cache_dir)
    try:
        with _unpack_lock(where):
            dataset = MNIST(str(where), train=(split == "train"), download=download)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        raise DataNotFoundError(_missing_data_message(where, download, error if download else None)) from None
    images = F.avg_pool2d(dataset.data.unsqueeze(1).float(), kernel_size=2).squeeze(1)
    return images, dataset.targets.clone()


def sample_pairs(images: torch.Tensor, labels: torch.Tensor, n: int, generator: torch.Generator) -> Pairs:
    """``n`` pairs drawn without replacement: 2n distinct images, consecutive ones paired (``n`` = 0:
    none, as tuning asks of the test split)."""
    if not 0 <= 2 * n <= len(images):
        raise ValueError(f"n={n} pairs need {2 * n} distinct images; the split has {len(images)}")
    idx = torch.randperm(len(images), generator=generator)[: 2 * n].view(n, 2)
    digits = labels[idx]
    return Pairs(x=images[idx], target=(digits[:, 0] <= digits[:, 1]).long(), digits=digits)


def split_validation(train: Pairs, n_val: int) -> tuple[Pairs, Pairs | None]:
    """(training pairs, validation pairs): the last ``n_val`` of the (already random) training pairs
    are held out for model selection, so the test pairs never have to be looked at."""
    if n_val == 0:
        return train, None
    keep = len(train) - n_val
    return (
        Pairs(train.x[:keep], train.target[:keep], train.digits[:keep]),
        Pairs(train.x[keep:], train.target[keep:], train.digits[keep:]),
    )


def scale_pixels(x: torch.Tensor, scale: str, mean: float, std: float) -> torch.Tensor:
    """``raw`` keeps 0..255 (the authors' inputs), ``unit`` maps to 0..1, ``standard`` subtracts
    the training split's mean pixel and divides by its SD."""
    if scale == "raw":
        return x
    if scale == "unit":
        return x / 255.0
    if scale == "standard":
        return (x - mean) / std
    raise ValueError(f"data.scale={scale!r}: allowed are {', '.join(SCALES)}")


def make_pairs(
    root: str,
    n_train: int,
    n_test: int,
    generator: torch.Generator,
    scale: str = "raw",
    download: bool = True,
    cache_dir: str | None = None,
) -> tuple[Pairs, Pairs]:
    """Training pairs from the train split, then test pairs from the test split, both drawn from
    ``generator``: the pairs of a run are a pure function of the generator's seed, and the training
    pairs do not depend on ``n_test`` (0 while tuning: no test pair is even drawn)."""
    train_images, train_labels = load_split(root, "train", download, cache_dir)
    test_images, test_labels = load_split(root, "test", download, cache_dir)
    train = sample_pairs(train_images, train_labels, n_train, generator)
    test = sample_pairs(test_images, test_labels, n_test, generator)
    # the split's statistics (a pass over 60k images) only where they are used
    mean, std = (train_images.mean().item(), train_images.std().item()) if scale == "standard" else (0.0, 1.0)
    return tuple(  # type: ignore[return-value]
        Pairs(scale_pixels(p.x, scale, mean, std), p.target, p.digits) for p in (train, test)
    )
