"""A run's trained model: built from its config, its weights saved beside its record
(``train.save_model``), and rebuilt from the two by ``load_run``.

    from mnist_pairs.results.runs import load_run
    run = load_run("outputs/beyond/siamese_lenet_mlp/relu/tuned=siamese_lenet_mlp-none/seed=0")
    logits = run.model(x)          # x: [n, 2, 14, 14], scaled as run.config.data.scale says

The weights file holds the model's config and the run's identity hash next to the state dict, so
that it rebuilds the model alone and cannot be mistaken for the weights of another run of the
same folder (a run redone with another config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.models import build_model
from mnist_pairs.results import records
from mnist_pairs.training.data import Pairs
from mnist_pairs.training.device import use_channels_last

WEIGHTS_FILE = "model.pt"
WEIGHTS_FORMAT = 1


class RunLoadError(ValueError):
    """A run folder whose model cannot be rebuilt; the message says why and what to do."""


def save_weights(run_dir: Path, model: torch.nn.Module, record: records.RunRecord) -> None:
    """Write the model's weights (after ``engine.fit``: the last epoch's, or with early stopping
    the best epoch's) atomically into ``run_dir``, on the CPU, and name the file in ``record``.
    Called before the record is written, so that a finished record's weights always exist."""
    state = {key: value.detach().to("cpu", copy=True).contiguous() for key, value in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "config_hash": record["config_hash"],
        "model": record["config"]["model"],
        "state_dict": state,
    }
    records.write_atomically(run_dir / WEIGHTS_FILE, lambda f: torch.save(payload, f))
    record["weights"] = WEIGHTS_FILE


@dataclass
class LoadedRun:
    run_dir: Path
    record: records.RunRecord
    config: DictConfig  # the run's resolved config, as its record keeps it
    model: torch.nn.Module  # in eval mode, on the device asked for, in the memory format it trained in
    channels_last: bool  # the model's memory format, which its input pairs take too (as in training)

    def input(self, pairs: Pairs) -> Pairs:
        """``pairs`` on the model's device, in the memory format it trained with."""
        pairs = pairs.to(next(self.model.parameters()).device)
        return pairs.channels_last() if self.channels_last else pairs


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The finished run of ``run_dir`` with its trained model, rebuilt from the config of its
    weights file and loaded with its weights; raises RunLoadError when that is not possible."""
    run_dir = Path(run_dir)
    if not (run_dir / records.RECORD_FILE).is_file():
        raise RunLoadError(
            f"{run_dir}: no {records.RECORD_FILE} there (a run's folder, e.g. "
            "outputs/beyond/<model>/<activation>/.../seed=0)"
        )
    try:
        record = records.read_record(run_dir / records.RECORD_FILE)
    except records.CorruptRecordError as error:
        raise RunLoadError(str(error)) from None
    if record["status"] != "ok":
        raise RunLoadError(f"{run_dir}: the run did not finish (status {record['status']}): it has no trained model")
    if "weights" not in record:
        raise RunLoadError(
            f"{run_dir}: the run saved no weights (train.save_model=true saves them; force=true redoes a finished run)"
        )
    path = run_dir / record["weights"]
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise RunLoadError(f"{path}: unreadable weights ({error})") from None
    if payload.get("config_hash") != record["config_hash"]:
        raise RunLoadError(
            f"{path}: weights of another run (identity {payload.get('config_hash')}, the record's "
            f"{record['config_hash']})"
        )
    config = OmegaConf.create(record["config"])
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("model"), dict)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise RunLoadError(f"{path}: not a weights file of this project (a dict with model and state_dict)")
    try:  # a weights file is data: what it names is checked as a config's targets are, before anything is built
        validate({"model": payload["model"]}, stages=("targets",))
    except ConfigError as error:
        raise RunLoadError(f"{path}: {error}") from None
    model = build_model(payload["model"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise RunLoadError(f"{path}: the weights do not fit the model ({str(error).strip().splitlines()[0]})") from None
    model = model.to(device).eval()
    channels_last = use_channels_last(OmegaConf.select(config, "device.channels_last", default="auto"), model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return LoadedRun(run_dir, record, config, model, channels_last)
