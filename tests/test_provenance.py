"""What a record says about the code that wrote it (``code``: commit, dirty, version; outside the
identity), what the report makes of it (the code per cell, a warning for a cell of several
commits), and the modes of the files written atomically (a plain ``open``'s, as the umask says)."""

from __future__ import annotations

import copy
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mnist_pairs
from mnist_pairs.analysis.collect import collect
from mnist_pairs.results import records
from mnist_pairs.results.runs import WEIGHTS_FILE, save_weights
from tests.conftest import ROOT


def git_out(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_a_record_names_its_commit_outside_its_identity(one_record):
    code = one_record["code"]
    assert code["version"] == mnist_pairs.__version__
    assert code["commit"] == git_out("rev-parse", "HEAD")
    assert isinstance(code["dirty"], bool)
    assert "code" not in one_record["config"]
    assert one_record["config_hash"] == records.config_hash(one_record["config"])
    edited = copy.deepcopy(one_record)
    edited["code"] = {"version": "9.9", "commit": "f" * 40, "dirty": True}
    assert records.config_hash(edited["config"]) == one_record["config_hash"]


@pytest.mark.parametrize(
    ("porcelain", "dirty"),
    [
        ("", False),
        ("?? notes.txt\n?? outputs/\n", False),  # untracked outside the code's folders
        ("?? mnist_pairs/models/new.py\n", True),
        (" M conf/config.yaml\n", True),
        ("R  mnist_pairs/a.py -> mnist_pairs/b.py\n", True),
    ],
)
def test_what_makes_a_checkout_dirty(porcelain, dirty):
    assert records.is_dirty(porcelain) is dirty


def test_outside_a_checkout_only_the_version_is_recorded(tmp_path):
    """A copy of the package outside any git checkout (as an installed wheel is)."""
    import shutil

    shutil.copytree(ROOT / "mnist_pairs", tmp_path / "mnist_pairs", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-c", "from mnist_pairs.results import records; print(records.code_provenance())"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr({"version": mnist_pairs.__version__})


def with_code(record: records.RunRecord, seed: int, commit: str | None, dirty: bool = False) -> records.RunRecord:
    out = copy.deepcopy(record)
    out["seed"], out["config"]["seed"] = seed, seed
    out["code"] = {"version": mnist_pairs.__version__, **({"commit": commit, "dirty": dirty} if commit else {})}
    return out


def test_the_report_names_each_cells_code_and_warns_when_a_cell_mixes_commits(one_record, tmp_path):
    from mnist_pairs.aggregate import aggregate

    folder = tmp_path / "results"
    records.write_record(folder / "a" / "seed=0", with_code(one_record, 0, "a" * 40))
    records.write_record(folder / "a" / "seed=1", with_code(one_record, 1, "b" * 40, dirty=True))
    other = with_code(one_record, 0, "c" * 40)
    other["config"]["model"]["tag"] = "other"  # another config: another cell
    other["model"] = "fcnn2"
    records.write_record(folder / "b" / "seed=0", other)
    data = collect(folder)
    assert set(data.runs["code"]) == {"aaaaaaa", "bbbbbbb+dirty", "ccccccc"}
    mixed = [w for w in data.warnings if "code commits" in w]
    assert mixed == ["fcnn/relu: runs of 2 code commits pooled (aaaaaaa, bbbbbbb+dirty)"]
    report, _ = aggregate(folder, out=tmp_path / "analysis")
    text = report.read_text()
    assert "- warning: fcnn/relu: runs of 2 code commits pooled (aaaaaaa, bbbbbbb+dirty)" in text
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in summary.splitlines() if line.startswith("| cell"))
    assert header.rstrip(" |").endswith("| code")
    assert "aaaaaaa, bbbbbbb+dirty" in summary and "ccccccc" in summary


def test_records_without_a_commit_show_their_version(one_record, tmp_path):
    records.write_record(tmp_path / "seed=0", with_code(one_record, 0, None))
    old = with_code(one_record, 1, None)
    del old["code"]  # a record written before records named their code
    records.write_record(tmp_path / "seed=1", old)
    data = collect(tmp_path)
    assert set(data.runs["code"]) == {f"mnist_pairs {mnist_pairs.__version__}"}
    assert not [w for w in data.warnings if "code commits" in w]


# --- file modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomically_written_files_get_the_mode_the_umask_gives(one_record, tmp_path, umask):
    before = os.umask(umask)
    try:
        assert records.current_umask() == umask
        run_dir = tmp_path / "seed=0"
        save_weights(run_dir, torch.nn.Linear(2, 2), copy.deepcopy(one_record))
        records.write_record(run_dir, one_record)
        records.mark_started(run_dir, [0])
        (run_dir / "plain.txt").write_text("x")
    finally:
        os.umask(before)
    expected = 0o666 & ~umask
    modes = {
        name: stat.S_IMODE((run_dir / name).stat().st_mode)
        for name in (records.RECORD_FILE, WEIGHTS_FILE, records.STARTED_FILE, "plain.txt")
    }
    assert modes == dict.fromkeys(modes, expected)
    assert not list(run_dir.glob(".*.tmp"))


def test_the_umask_is_read_without_changing_it():
    before = os.umask(0o027)
    try:
        assert records.current_umask() == 0o027 and records.current_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(before)


def test_no_other_atomic_writer_uses_a_private_temporary_file():
    """mkstemp's files are 0o600: every atomic write goes through records.write_atomically."""
    users = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "mnist_pairs").rglob("*.py"))
        if "mkstemp" in p.read_text() or "NamedTemporaryFile" in p.read_text()
    ]
    assert users == [str(Path("mnist_pairs/results/records.py"))]
