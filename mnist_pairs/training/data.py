"""MNIST through torchvision, 2x2 average pooled to 14x14, and the digit-pair sampling of the
course's ``generate_pair_sets`` (see docs/protocol.md): ``idx = randperm(N)[:2n].view(n, 2)``,
target ``first <= second`` (equal digits are class 1)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = [name for pair in RAW_FILES.values() for name in pair]
SCALES = ("raw", "unit", "standard")
DEFAULT_CACHE = Path.home() / ".cache" / "mnist_pairs"


class DataError(RuntimeError):
    """MNIST cannot be read: missing, or a file is corrupt; the message names the file or folder."""


class DataNotFoundError(DataError):
    """MNIST is neither on disk nor downloadable; the message says where we looked."""


class CorruptDataError(DataError):
    """An MNIST file is there but not what it should be (truncated, damaged, another file)."""


@dataclass(frozen=True)
class Pairs:
    """``x`` [n, 2, 14, 14] float32 (the two images as channels), ``target`` [n] int64
    (1 when digit 1 <= digit 2), ``digits`` [n, 2] int64 (the two labels, for the auxiliary loss)."""

    x: torch.Tensor
    target: torch.Tensor
    digits: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device | str) -> Pairs:
        return Pairs(self.x.to(device), self.target.to(device), self.digits.to(device))

    def channels_last(self) -> Pairs:
        return Pairs(self.x.contiguous(memory_format=torch.channels_last), self.target, self.digits)


@functools.lru_cache(maxsize=1)
def official_md5() -> dict[str, str]:
    """The MD5 of each official ``.gz`` file, as torchvision knows them (it checks them too when
    it downloads)."""
    from torchvision.datasets import MNIST  # deferred: importing torchvision costs ~1 s

    return {os.path.basename(url): md5 for url, md5 in MNIST.resources}


def check_gz(path: Path) -> None:
    """CorruptDataError unless ``path`` is the official file of its name (its MD5)."""
    expected = official_md5().get(path.name)
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        raise CorruptDataError(
            f"{path} is corrupt: its MD5 is {actual}, the official file's is {expected} (truncated or damaged?). "
            "Replace it with the official file, or delete it and let data.download=true fetch it again."
        )


def idx_problem(path: Path) -> str | None:
    """Why the unpacked IDX file ``path`` cannot be read as MNIST (None when it can): its header
    (magic number, dimensions: [n, 28, 28] images or [n] labels 0-9) and its exact size. A file
    cut short by a killed unpacking is caught here; its bytes are not checked against a checksum
    (torchvision publishes those of the .gz files only; check_gz checks them before unpacking)."""
    images = "images" in path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16 if images else 8)
            labels = b"" if images else f.read(1 << 20)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if len(head) < (16 if images else 8):
        return f"{size} bytes: shorter than an IDX header"
    magic, n = struct.unpack(">II", head[:8])
    if magic != (0x803 if images else 0x801):
        return f"not an MNIST IDX {'image' if images else 'label'} file (magic number {magic:#x})"
    if images and struct.unpack(">II", head[8:16]) != (28, 28):
        return f"images of {struct.unpack('>II', head[8:16])} pixels, not 28 x 28"
    expected = (16 + 28 * 28 * n) if images else (8 + n)
    if size != expected:
        kind = "images" if images else "labels"
        return f"{size} bytes where its header announces {expected} ({n} {kind}): cut short or padded"
    if labels and max(labels) > 9:
        return f"a label {max(labels)} outside 0-9"
    return None


def _unpack(gz: Path, target: Path) -> None:
    """Unpack ``gz`` to ``target`` atomically (a temporary file, then a rename): a killed
    unpacking leaves a ``.part`` file that nothing reads, never a half-written ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with gzip.open(gz, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_root(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The root torchvision should read: ``root`` itself when it holds the unpacked IDX files or
    can unpack in place (or download into); otherwise (a read-only root, such as a shared data
    folder) a writable cache, into which its ``.gz`` files are unpacked."""
    root = Path(root).expanduser().resolve()
    raw = root / "MNIST" / "raw"
    if all(idx_problem(raw / n) is None for n in ALL_FILES) or not raw.is_dir():
        return root
    # writable by its permission bits too: root passes os.access on a read-only (r-x) folder, and
    # we must not unpack into a folder its owner marked read-only
    if os.access(raw, os.W_OK) and raw.stat().st_mode & 0o200:
        return root
    return Path(cache_dir).expanduser().resolve() if cache_dir else DEFAULT_CACHE


def _gz_of(name: str, folders: tuple[Path, ...]) -> Path | None:
    return next((d / (name + ".gz") for d in folders if (d / (name + ".gz")).is_file()), None)


def _ready_files(root: Path, where: Path) -> str | None:
    """Make the four unpacked files under ``where`` readable (torchvision wants all four, whatever
    the split), unpacking verified ``.gz`` files (from ``where`` or the data ``root``) for any that
    is missing or damaged; the name of the first file still missing, or None. CorruptDataError for
    a ``.gz`` that is not the official file, or an unpacked file that is damaged with no ``.gz`` to
    unpack again."""
    raw, root_raw = where / "MNIST" / "raw", root / "MNIST" / "raw"
    for name in ALL_FILES:
        if idx_problem(raw / name) is None:
            continue
        gz = _gz_of(name, (raw, root_raw))
        if gz is None:
            damaged = next((d / name for d in (raw, root_raw) if (d / name).exists()), None)
            if damaged is not None:
                raise CorruptDataError(
                    f"{damaged} is corrupt: {idx_problem(damaged)}. Replace it with the official file (or its .gz)."
                )
            return name
        check_gz(gz)
        raw.mkdir(parents=True, exist_ok=True)
        _unpack(gz, raw / name)
        problem = idx_problem(raw / name)
        if problem is not None:
            raise CorruptDataError(f"{raw / name}, unpacked from {gz}, is not MNIST: {problem}")
    return None


def prepare_split(
    root: str | os.PathLike, split: str, download: bool = True, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, int]:
    """(the root torchvision reads the ``split`` from, its number of images), all four files
    checked (torchvision wants them all): unpacked IDX files by their header and size, ``.gz``
    files by their official MD5 before they are unpacked, atomically. Downloads (torchvision, which
    checks the MD5 too) only what is missing, when ``download``. DataNotFoundError or
    CorruptDataError otherwise, naming the folder or the file. Nothing is created where there is
    nothing to unpack or download."""
    if split not in RAW_FILES:
        raise ValueError(f"split={split!r}: allowed are {sorted(RAW_FILES)}")
    try:
        source = Path(root).expanduser().resolve()
        where = resolve_root(source, cache_dir)
        raw = where / "MNIST" / "raw"
        if any(idx_problem(raw / n) is not None for n in ALL_FILES):
            writes = download or any(_gz_of(n, (raw, source / "MNIST" / "raw")) for n in ALL_FILES)
            with _unpack_lock(where) if writes else contextlib.nullcontext():
                missing = _ready_files(source, where)
                if missing is not None and download:
                    _download(where, split)
                    missing = _ready_files(source, where)
            if missing is not None:
                raise DataNotFoundError(_missing_data_message(source, download, None))
        counts = []
        for name in RAW_FILES[split]:  # the number of items each IDX header announces
            with open(raw / name, "rb") as f:
                counts.append(struct.unpack(">II", f.read(8))[1])
    except OSError as error:  # a path too long, a folder that cannot be read or written
        raise DataNotFoundError(
            f"MNIST cannot be read from data.root={str(root)[:200]!r} (data.cache_dir={cache_dir!r}): {error}"
        ) from None
    images, labels = counts
    if images != labels:
        raise CorruptDataError(
            f"{raw}: {RAW_FILES[split][0]} holds {images} images and {RAW_FILES[split][1]} {labels} labels"
        )
    return where, images


def _download(where: Path, split: str) -> None:
    """torchvision's download of MNIST into ``where`` (it checks each .gz's MD5 and unpacks)."""
    from torchvision.datasets import MNIST

    try:
        MNIST(str(where), train=(split == "train"), download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        raise DataNotFoundError(_missing_data_message(where, True, error)) from None


def _missing_data_message(root: Path, download: bool, cause: BaseException | None) -> str:
    raw = root / "MNIST" / "raw"
    first_line = str(cause).strip().splitlines()[0] if cause else ""
    why = f"download failed: {type(cause).__name__}: {first_line}" if cause else "download=false"
    return (
        f"MNIST not found: looked for {', '.join(ALL_FILES)} "
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
        handle = open(lock_dir / ".unpack.lock", "a")  # noqa: SIM115 (held for the whole with-block below)
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
def load_split(
    root: str, split: str, download: bool = True, cache_dir: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one split, 2x2 average pooled to [N, 14, 14] float32 in 0..255, and labels [N].

    Cached per process: a worker that runs many jobs reads the files once."""
    from torchvision.datasets import MNIST  # deferred: importing torchvision costs ~1 s

    where, _ = prepare_split(root, split, download, cache_dir)
    try:
        dataset = MNIST(str(where), train=(split == "train"), download=False)
    except Exception as error:  # the files passed prepare_split: say what torchvision said
        raise CorruptDataError(
            f"{where / 'MNIST' / 'raw'}: torchvision cannot read MNIST ({type(error).__name__}: {error})"
        ) from None
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
