"""Shared fixtures: synthetic MNIST in the real IDX format, Hydra's compose API, and the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from mnist_pairs.config import CONF_DIR, compose_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
ACTIVATIONS = sorted(p.stem for p in (CONF_DIR / "activation").glob("*.yaml"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in MNIST's IDX format: magic (0, 0, 0x08, ndim), dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose digit is drawn as a bright 8x8 block at a label-dependent position, plus
    noise: learnable, so short training runs show real progress."""
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, label in enumerate(labels):
        r, c = 2 + 5 * (label // 5) * 2, 2 + 5 * (label % 5)
        images[i, r : r + 8, c : c + 4] = 255
    return images, labels


def make_synthetic_mnist(root: Path, n_train: int = 600, n_test: int = 300, seed: int = 0) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = synthetic_digits(n, rng)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slurm`` install and start a SLURM cluster as root (scripts/slurm_cluster.sh):
    they run only when asked for by name, ``-m slurm`` (make test-slurm), never by a plain pytest."""
    if "slurm" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="opt-in: run with -m slurm (make test-slurm), which starts a one-node SLURM cluster")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def one_record(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> dict:
    """One finished run of fcnn on synthetic data (100 train pairs, 50 test pairs, one epoch): a
    real record that tests copy and edit (seeds, statuses, code) to build results folders."""
    from mnist_pairs.config import compose_config
    from mnist_pairs.training.run import run

    cfg = compose_config(
        "model=fcnn",
        f"data.root={synthetic_root}",
        "data.download=false",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=1",
    )
    return run(cfg, tmp_path_factory.mktemp("one") / "seed=0")


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The official MNIST files of ../shared/data (or MNIST_PAIRS_DATA); slow tests skip without."""
    root = Path(os.environ.get("MNIST_PAIRS_DATA", SHARED_DATA))
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST under {root}")
    return root


Composer = Callable[..., DictConfig]


@pytest.fixture
def compose_cfg() -> Composer:
    """Compose conf/ with Hydra's compose API, as the CLI would."""

    return compose_config


@contextlib.contextmanager
def training_crashes(message: str = "boom in the optimizer") -> Iterator[None]:
    """Every Adam step on real tensors raises RuntimeError(``message``) (torch's, patched; the
    dry run's steps on the meta device pass): a real ``failed`` record, for tests that need one. A
    config that cannot train is refused before any run, so a broken model no longer gives one."""
    import torch

    step = torch.optim.Adam.step

    def broken_step(self, closure=None):
        if all(p.device.type == "meta" for group in self.param_groups for p in group["params"]):
            return step(self, closure)
        raise RuntimeError(message)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.Adam, "step", broken_step)
        yield


def run_cli(
    *args: str, module: str = "mnist_pairs.train", env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` in a subprocess from the repository root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(
    *args: str, output: int | None = subprocess.PIPE, errors: int | None = subprocess.PIPE
) -> subprocess.Popen:
    """Start ``python -m mnist_pairs.train args...`` from the repository root in a session of its
    own (its process group: what a terminal's Ctrl-C reaches, and what stop_process_group ends),
    text output to ``output`` and ``errors`` (``subprocess.STDOUT``: merged, DEVNULL: dropped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_pairs.train", *args],
        cwd=ROOT,
        stdout=output,
        stderr=errors,
        text=True,
        start_new_session=True,
    )


def free_port() -> int:
    """A TCP port of localhost that nothing listens on (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free localhost port (SQLite backend, artifacts proxied into
    its folder), started once for the session and stopped after it; it stops by itself after
    30 minutes in any case. Yields its tracking URI."""
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    cmd = [
        "timeout",
        "1800",
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job workers: 2 cores here
    with open(folder / "server.log", "w") as log:
        server = subprocess.Popen(
            cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not healthy(uri):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        stop_process_group(server)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group a test started (``start_new_session``), then SIGKILL to any
    process of it still there after 30 s (none, when the group has ended by itself)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
