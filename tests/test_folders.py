"""One identity, one folder: a run's folder is named by the model group's choice, so presets that
share a ``name`` (``model=cnn3`` and ``model=authors/cnn3``) never share a folder; records in the
folders named by ``model.name`` (tests/frozen_records, results of older code) are still found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from mnist_pairs.analysis.collect import collect
from mnist_pairs.config import CONF_DIR, compose_config
from mnist_pairs.config.folders import legacy_run_folder, run_folder
from mnist_pairs.results import records
from tests.conftest import run_cli

FROZEN = Path(__file__).parent / "frozen_records"
PRESETS = sorted(
    p.relative_to(CONF_DIR / "model").with_suffix("").as_posix() for p in (CONF_DIR / "model").rglob("*.yaml")
)
TINY = ("seed=0", "train.epochs=1", "data.n_train=100", "data.n_test=100")
VARIANT = "data.n_test=100,data.n_train=100,train.epochs=1"  # TINY's folder part


def model_folder(choice: str) -> str:
    """The model part of ``model=<choice>``'s run folder, as Hydra resolves ``hydra.run.dir``."""
    cfg = compose_config(f"model={choice}", "seed=3", "output_root=/out", "experiment_name=e", hydra=True)
    HydraConfig.instance().set_config(cfg)
    run_dir = run_folder(cfg, "hydra.run.dir")
    assert run_dir.parts[-2:] == ("relu", "seed=3") and run_dir.parts[:3] == ("/", "out", "e"), run_dir
    return run_dir.parts[-3]


def test_a_preset_whose_choice_is_its_name_keeps_its_folder_and_the_others_get_their_own():
    folders = {choice: model_folder(choice) for choice in PRESETS}
    names = {choice: str(compose_config(f"model={choice}").model.name) for choice in PRESETS}
    for choice, folder in folders.items():
        assert folder == (names[choice] if choice == names[choice] else choice.replace("/", "-")), choice
    assert folders["authors/cnn3"] == "authors-cnn3" and folders["cnn3"] == "cnn3"
    assert len(set(folders.values())) == len(folders), "two model presets share a folder"


def test_activation_presets_are_named_by_their_choice():
    """The folder's activation part is ``activation.name``: one folder per preset only while each
    preset's name is its choice."""
    for path in (CONF_DIR / "activation").rglob("*.yaml"):
        choice = path.relative_to(CONF_DIR / "activation").with_suffix("").as_posix()
        assert str(compose_config(f"activation={choice}").activation.name) == choice


def test_the_legacy_folder_is_the_one_named_by_the_model_name():
    run_dir = Path("/out/e/authors-cnn3/relu/data.scale=unit/seed=0")
    assert legacy_run_folder(run_dir, "authors/cnn3", "cnn3") == Path("/out/e/cnn3/relu/data.scale=unit/seed=0")
    assert legacy_run_folder(Path("/out/e/cnn3/relu/seed=0"), "cnn3", "cnn3") is None  # never moved
    assert legacy_run_folder(Path("/mine/seed=0"), "authors/cnn3", "cnn3") is None  # a hydra.run.dir of the user's
    assert legacy_run_folder(run_dir, None, "cnn3") is None  # outside Hydra's run


def train(out: Path, data_root: Path, *overrides: str):
    done = run_cli(
        *overrides, *TINY, f"output_root={out}", "experiment_name=e", f"data.root={data_root}", "data.download=false"
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def record_files(out: Path) -> dict[str, str]:
    """Every record file (finished or set aside) under ``out`` -> its bytes."""
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("record*.json"))}


def test_two_presets_of_one_name_alternate_without_training_again(tmp_path, synthetic_root):
    train(tmp_path, synthetic_root, "model=cnn3")
    train(tmp_path, synthetic_root, "model=authors/cnn3")
    both = record_files(tmp_path)
    assert sorted(both) == [f"e/{m}/relu/{VARIANT}/seed=0/record.json" for m in ("authors-cnn3", "cnn3")]
    again = train(tmp_path, synthetic_root, "model=cnn3")
    assert "skip" in again and "finished record exists" in again, again[-3000:]
    assert record_files(tmp_path) == both, "nothing trained, nothing set aside"
    sweep = train(tmp_path, synthetic_root, "-m", "model=cnn3,authors/cnn3")
    assert "0 ok, 0 failed, 0 diverged, 2 already done" in sweep, sweep[-3000:]
    assert record_files(tmp_path) == both
    # the analysis keeps them apart and names each by its folder
    data = collect(tmp_path)
    assert sorted(data.runs["cell"]) == [f"authors-cnn3/relu {VARIANT}", f"cnn3/relu {VARIANT}"]
    assert sorted(data.runs["model"]) == ["cnn3", "cnn3"]


@pytest.mark.parametrize("how", ["run", "sweep"])
def test_a_record_in_the_folder_named_by_the_model_name_is_found(how, tmp_path, synthetic_root):
    """A record of ``model=authors/cnn3`` that the code before the choice named folders wrote into
    ``cnn3/`` (tests/frozen_records) counts as finished for a run and for a sweep alike."""
    folder = f"cnn3/relu/{VARIANT}/seed=0"
    shutil.copytree(FROZEN / "presets_authors" / folder, tmp_path / "e" / folder)
    before = record_files(tmp_path)
    overrides = ("-m", "model=authors/cnn3") if how == "sweep" else ("model=authors/cnn3",)
    out = train(tmp_path, synthetic_root, *overrides)
    assert ("1 already done" if how == "sweep" else "finished record exists") in out, out[-3000:]
    assert record_files(tmp_path) == before, "nothing trained"
    if how == "sweep":
        assert not (tmp_path / "e" / "authors-cnn3").exists(), "a finished job is not launched"


def test_force_redoes_a_run_whose_record_is_in_the_older_folder_and_keeps_one_record(tmp_path, synthetic_root):
    folder = f"cnn3/relu/{VARIANT}/seed=0"
    shutil.copytree(FROZEN / "presets_authors" / folder, tmp_path / "e" / folder)
    ident = records.read_record(tmp_path / "e" / folder / records.RECORD_FILE)["config_hash"]
    out = train(tmp_path, synthetic_root, "model=authors/cnn3", "force=true")
    assert "finished record exists" not in out, out[-3000:]
    assert sorted(record_files(tmp_path)) == [
        f"e/authors-cnn3/relu/{VARIANT}/seed=0/record.json",
        f"e/{folder}/record.superseded-{ident}.json",
    ]
    data = collect(tmp_path)
    assert len(data.runs) == 1 and data.duplicates == []


def test_the_report_names_two_presets_of_one_name_apart_in_either_layout(tmp_path):
    """Frozen records of ``model=cnn3`` and ``model=authors/cnn3``: in the folders of today's layout
    each cell is labelled by its folder's model; in an older results folder (folders named by the
    model's name, one preset only) the label stays the model's name."""
    folder = f"relu/{VARIANT}/seed=0"
    shutil.copytree(FROZEN / "presets" / "cnn3" / folder, tmp_path / "both" / "cnn3" / folder)
    shutil.copytree(FROZEN / "presets_authors" / "cnn3" / folder, tmp_path / "both" / "authors-cnn3" / folder)
    shutil.copytree(FROZEN / "presets_authors" / "cnn3" / folder, tmp_path / "old" / "cnn3" / folder)
    both = collect(tmp_path / "both").runs.set_index("path")
    assert both.loc[f"cnn3/{folder}", "cell"] == f"cnn3/relu {VARIANT}"
    assert both.loc[f"authors-cnn3/{folder}", "cell"] == f"authors-cnn3/relu {VARIANT}"
    assert both["cell_hash"].nunique() == 2
    assert list(collect(tmp_path / "old").runs["cell"]) == [f"cnn3/relu {VARIANT}"]


def test_records_set_aside_by_two_presets_taking_turns_are_put_back_untrained(tmp_path, synthetic_root):
    """The older layout's ping-pong: ``cnn3/...`` holds ``model=cnn3``'s record and the record of
    ``model=authors/cnn3`` that it set aside. A sweep over both trains nothing: cnn3 is done where
    it is, authors/cnn3's record goes back into its own folder."""
    folder = f"relu/{VARIANT}/seed=0"
    old = tmp_path / "e" / "cnn3" / folder
    shutil.copytree(FROZEN / "presets" / "cnn3" / folder, old)
    authors = records.read_record(FROZEN / "presets_authors" / "cnn3" / folder / records.RECORD_FILE)
    (old / f"record.superseded-{authors['config_hash']}.json").write_text(json.dumps(authors))
    plain = records.read_record(old / records.RECORD_FILE)
    out = train(tmp_path, synthetic_root, "-m", "model=cnn3,authors/cnn3")
    assert "0 ok, 0 failed, 0 diverged, 2 already done" in out, out[-3000:]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("record*.json")) == [
        f"e/{m}/{folder}/record.json" for m in ("authors-cnn3", "cnn3")
    ]
    assert records.read_record(old / records.RECORD_FILE) == plain
    assert records.read_record(tmp_path / "e" / "authors-cnn3" / folder / records.RECORD_FILE) == authors


def test_a_record_put_back_brings_its_weights_under_their_own_name(tmp_path):
    folder = FROZEN / "presets" / "cnn3" / f"relu/{VARIANT}/seed=0"
    record = {**records.read_record(folder / records.RECORD_FILE), "weights": "model.pt"}
    legacy, run_dir = tmp_path / "cnn3", tmp_path / "authors-cnn3"
    records.write_record(legacy, record)
    (legacy / "model.pt").write_bytes(b"weights")
    kept = records.set_aside(legacy, record["config_hash"])
    found = records.find_finished(record["config_hash"], run_dir, legacy)
    assert found is not None and found[0] == kept
    assert records.restore(kept, run_dir) == record
    assert (run_dir / "model.pt").read_bytes() == b"weights" and not list(legacy.iterdir())
    assert records.find_finished(record["config_hash"], run_dir, legacy) == (run_dir / records.RECORD_FILE, record)
    assert records.find_finished("0" * 16, run_dir, legacy) is None
