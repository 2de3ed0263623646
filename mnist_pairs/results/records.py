"""The run record: its schema (one place), the run's identity, and atomic reading and writing.

A record is the single source of truth about a run; aggregation reads nothing else."""

import contextlib
import functools
import hashlib
import itertools
import json
import os
import platform
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal, TypedDict

try:
    from typing import NotRequired
except ImportError:  # Python 3.10
    from typing_extensions import NotRequired

from mnist_pairs.config.schema import non_identity_keys
from mnist_pairs.training.seeding import DRAWS_VERSION

RECORD_FILE = "record.json"
STARTED_FILE = "started.json"  # written into a run's folder when its training starts (every seed of a batch)
SCHEMA_VERSION = 2  # 2: per-pair test predictions (test_pairs) and the digit branch's accuracy (digit_acc)
# interrupted: stopped by SIGINT or SIGTERM (mnist_pairs.training.interrupt); neither finished nor failed
Status = Literal["ok", "failed", "diverged", "interrupted"]

# Keys that do not change a run's results: left out of its identity hash (declared in the schema).
NON_IDENTITY_KEYS = non_identity_keys()


class Metrics(TypedDict):
    train_acc: float
    train_loss: float
    test_acc: NotRequired[float]  # absent with data.n_test=0 (tuning: no test pairs at all)
    test_loss: NotRequired[float]
    val_acc: NotRequired[float]  # with data.n_val > 0: the held-out training pairs, for model selection
    val_loss: NotRequired[float]
    # models trained with the auxiliary loss: their branch's digit accuracy on the 2n test images
    digit_acc: NotRequired[float]


class TestPairs(TypedDict):
    """The test pairs of a run, compactly, for paired analysis without recomputing the data:
    ``digits`` the two digits of every pair as 2n characters (pair i: characters 2i and 2i + 1;
    the same seed and data settings draw the same string, whatever the model), ``predicted`` the
    predicted class of every pair as n characters '0'/'1'."""

    digits: str
    predicted: str


class History(TypedDict):
    """Per-epoch lists, one entry per epoch run (``epochs``, fewer after early stopping);
    ``test_acc`` is empty when not monitored, None at epochs between ``train.eval_interval``s;
    ``val_acc`` only with validation pairs."""

    train_loss: list[float]
    train_acc: list[float]
    test_acc: list[float | None]
    val_acc: NotRequired[list[float]]


class Code(TypedDict):
    """Which code wrote a record: the package's ``version`` always; from a git checkout also its
    ``commit`` and ``dirty``, whether tracked files differ from that commit or untracked files sit
    in the code's folders (``mnist_pairs/``, ``hydra_plugins/``). Outside the identity hash."""

    version: str
    commit: NotRequired[str]
    dirty: NotRequired[bool]


class RunRecord(TypedDict):
    """One run. ``variant`` names the overridden keys beyond model/activation/seed (Hydra's
    override_dirname, "" for none); ``config`` is the whole resolved config; ``metrics`` are the
    final eval-mode accuracy and cross-entropy on all train and test pairs; ``train_time_s`` is
    docs/protocol.md's training wall time; ``host`` and ``pid`` are the machine and process that ran it,
    ``slurm_job`` its SLURM job (``<array job>_<task>``, only under SLURM); failed runs also carry
    ``traceback``; ``code`` is the code that ran it (``Code``), outside ``config`` and its hash."""

    schema_version: int
    status: Status
    error: str | None
    model: str
    activation: str
    variant: str
    seed: int
    config_hash: str
    config: dict[str, Any]
    n_params: int
    metrics: Metrics | None
    history: History | None
    train_time_s: float | None
    device: str
    device_name: str
    versions: dict[str, str]
    started_at: str
    finished_at: str
    test_pairs: NotRequired[TestPairs]  # schema 2, with test pairs; older records lack it
    best_epoch: NotRequired[int]  # with validation pairs: the epoch of the best validation accuracy
    host: NotRequired[str]
    pid: NotRequired[int]
    slurm_job: NotRequired[str]
    # with train.save_model: the file of the trained weights beside the record (mnist_pairs.results.runs)
    weights: NotRequired[str]
    traceback: NotRequired[str]
    code: NotRequired[Code]  # the code that ran it (``code_provenance``); older records lack it


REQUIRED_KEYS = RunRecord.__required_keys__


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the resolved config minus the NON_IDENTITY_KEYS, and of what its
    seed draws (seeding.DRAWS_VERSION; version 1, the draws of every record written before the
    version existed, adds nothing, so that their hashes stay as they were)."""
    ident = json.loads(json.dumps(config, sort_keys=True, default=str))
    if DRAWS_VERSION > 1:
        ident["_draws_version"] = DRAWS_VERSION
    for dotted in NON_IDENTITY_KEYS:
        *parents, leaf = dotted.split(".")
        node = ident
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def setting(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a dotted key of a resolved config (``default`` when absent)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value} (an empty mapping stays a value)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def cell_hash(config: dict[str, Any]) -> str:
    """The identity of a run's cell: its config hash without the seed. Runs of one cell differ
    only in their seed, so aggregation may pool them; runs of two cells must never be pooled."""
    return config_hash({k: v for k, v in config.items() if k != "seed"})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def slurm_job() -> dict[str, str]:
    """``{"slurm_job": "<array job>_<task>"}`` (or the plain job id) when SLURM runs this process."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return {"slurm_job": f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"}
    return {"slurm_job": env["SLURM_JOB_ID"]} if "SLURM_JOB_ID" in env else {}


CODE_FOLDERS = ("mnist_pairs/", "hydra_plugins/")  # untracked files here make a checkout dirty; elsewhere not


def git(checkout: Path, *args: str) -> str | None:
    """``git <args>`` in ``checkout``: its output, or None where git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def is_dirty(porcelain: str) -> bool:
    """Whether ``git status --porcelain`` output shows a tracked file changed, or an untracked
    file in the code's folders (notes, outputs or data elsewhere in the checkout do not count)."""
    lines = porcelain.splitlines()
    return any(not line.startswith("??") or line[3:].strip('"').startswith(CODE_FOLDERS) for line in lines)


@functools.cache
def code_provenance() -> Code:
    """The code this process runs (once per process): the package version, and where the package
    sits in a git checkout of its own (not a site-packages folder inside some other repository),
    the checkout's commit and whether it is modified (``is_dirty``)."""
    import mnist_pairs

    code: Code = {"version": str(getattr(mnist_pairs, "__version__", "?"))}
    package = Path(mnist_pairs.__file__).resolve().parent
    top = git(package, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != package.parent:
        return code
    commit = git(package.parent, "rev-parse", "HEAD")
    status = git(package.parent, "status", "--porcelain", "--untracked-files=normal")
    if commit is not None and status is not None:
        code.update(commit=commit.strip(), dirty=is_dirty(status))
    return code


def new_record(
    config: dict[str, Any], ident: str, variant: str, device: str, device_name: str, versions: dict[str, str]
) -> RunRecord:
    """A record of the run of resolved ``config`` in its ``failed`` state: what is known before
    training; ``complete_record`` fills in the results."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "error": None,
        "model": config["model"]["name"],
        "activation": config["activation"]["name"],
        "variant": variant,
        "seed": config["seed"],
        "config_hash": ident,
        "config": config,
        "n_params": 0,
        "metrics": None,
        "history": None,
        "train_time_s": None,
        "device": device,
        "device_name": device_name,
        "versions": versions,
        "started_at": now(),
        "finished_at": "",
        "host": platform.node(),
        "pid": os.getpid(),
        **slurm_job(),
        "code": code_provenance(),
    }


def encode_test_pairs(digits: Sequence[int], predicted: Sequence[int]) -> TestPairs:
    """``TestPairs`` from the pairs' digits, flat (d1, d2 of pair 0, then of pair 1, ...), and the
    predicted class of every pair."""
    return {"digits": "".join(map(str, digits)), "predicted": "".join(map(str, predicted))}


def complete_record(
    record: RunRecord,
    metrics: Metrics,
    history: History,
    train_time_s: float,
    best_epoch: int | None = None,
    test_pairs: TestPairs | None = None,
) -> None:
    """Fill in a finished run's results: status ``ok``."""
    record.update(status="ok", history=history, train_time_s=train_time_s, metrics=metrics)
    if best_epoch is not None:
        record["best_epoch"] = best_epoch
    if test_pairs is not None:
        record["test_pairs"] = test_pairs


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status),
    else set and restored under a lock (a file another thread creates in between could get 0o666)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write`` atomically: a temporary file in the same folder, fsync,
    rename, fsync of the folder. A reader sees the old file or the new one, never a torn file; the
    file gets the mode a plain ``open`` would give, 0o666 less the umask (mkstemp's files are 0o600
    whatever the umask, which would hide records and weights from a shared group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError):  # a file system without modes (some network mounts) keeps mkstemp's
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def write_record(run_dir: Path, record: RunRecord, name: str = RECORD_FILE) -> Path:
    """Write ``record.json`` (or another ``name``) atomically (``write_atomically``)."""
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=True).encode()
    return write_atomically(run_dir / name, lambda f: f.write(text))


def mark_started(run_dir: Path, seeds: Sequence[int]) -> None:
    """Write ``started.json`` (when, where, and the seeds trained together) into ``run_dir``: a
    folder holding it and no finished record is a run that started and did not finish (killed,
    or still running). Hydra's ``.hydra/`` says as much for a job's first seed only."""
    text = json.dumps({"started_at": now(), "host": platform.node(), "pid": os.getpid(), "seeds": list(seeds)})
    write_atomically(run_dir / STARTED_FILE, lambda f: f.write(text.encode()))


class CorruptRecordError(ValueError):
    """A record file that cannot be parsed or lacks required keys."""


def read_record(path: Path) -> RunRecord:
    """Parse a record, checking it has every key of the schema."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CorruptRecordError(f"{path}: unreadable record ({error})") from None
    if not isinstance(data, dict):
        raise CorruptRecordError(f"{path}: a record must be a JSON object")
    missing = REQUIRED_KEYS - data.keys()
    if missing:
        raise CorruptRecordError(f"{path}: missing keys {sorted(missing)}")
    return data  # type: ignore[return-value]


def set_aside(run_dir: Path, old_hash: str) -> Path:
    """Rename the run's record to ``record.superseded-<hash>[-n].json`` (aggregation reads only
    ``record.json``), so that a run of another config can take the folder without losing it; its
    saved weights, when it names any, go aside with it (``model.superseded-<hash>[-n].pt``, named
    in the set-aside record), before the new run's weights can take their place."""
    suffix, n = old_hash, 1
    while (run_dir / f"record.superseded-{suffix}.json").exists():
        n += 1
        suffix = f"{old_hash}-{n}"
    target = run_dir / f"record.superseded-{suffix}.json"
    try:
        old = read_record(run_dir / RECORD_FILE)
    except CorruptRecordError:
        old = None
    weights = run_dir / old["weights"] if old is not None and "weights" in old else None
    if weights is not None and weights.parent == run_dir and weights.is_file():
        kept = f"{weights.stem}.superseded-{suffix}{weights.suffix}"
        os.replace(weights, run_dir / kept)
        write_record(run_dir, {**old, "weights": kept}, target.name)
        (run_dir / RECORD_FILE).unlink()
    else:
        os.replace(run_dir / RECORD_FILE, target)
    return target


def finished_record(run_dir: Path, name: str = RECORD_FILE) -> RunRecord | None:
    """The run's record (or the record ``name`` in its folder) if the run finished (status ok, or
    diverged: a NaN loss is a result that the same seed reproduces), else None (missing, failed or
    corrupt: redone on resume)."""
    try:
        record = read_record(run_dir / name)
    except CorruptRecordError:  # missing too
        return None
    return record if record["status"] in ("ok", "diverged") else None


def find_finished(ident: str, run_dir: Path, legacy_dir: Path | None = None) -> tuple[Path, RunRecord] | None:
    """(record file, record) of the finished run of identity ``ident``: ``record.json`` in
    ``run_dir``, else in ``legacy_dir`` (the folder the run had when folders were named by
    ``model.name``: mnist_pairs.config.folders.legacy_run_folder), else a record of it set aside
    in either (``record.superseded-<ident>[-n].json``: ``restore`` puts it back); matched by
    ``config_hash``; None when none holds it. The one lookup of the grid sweeper (which jobs to
    launch) and of a run (skip when done)."""
    folders = [f for f in (run_dir, legacy_dir) if f is not None]
    aside = (path for f in folders for path in sorted(f.glob(f"record.superseded-{ident}*.json")))
    for path in itertools.chain((f / RECORD_FILE for f in folders), aside):
        record = finished_record(path.parent, path.name)
        if record is not None and record["config_hash"] == ident:
            return path, record
    return None


def restore(path: Path, run_dir: Path) -> RunRecord:
    """Put a record set aside (``set_aside``, in ``run_dir`` or its folder of the older layout)
    back as ``run_dir``'s record, its weights with it under their own name: the run of the same
    identity, which needs no training. ``run_dir``'s own finished record must be set aside first."""
    record = read_record(path)
    kept = path.parent / record["weights"] if "weights" in record else None
    if kept is not None and kept.parent == path.parent and kept.is_file():
        name = kept.name.split(".superseded-")[0] + kept.suffix
        run_dir.mkdir(parents=True, exist_ok=True)
        os.replace(kept, run_dir / name)
        record["weights"] = name
    write_record(run_dir, record)
    path.unlink()
    return record
