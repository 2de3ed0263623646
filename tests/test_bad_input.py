"""Bad input, systematically: every key of the composed config (walked, so a new key is covered
without editing this file) gets wrong types, out-of-range, empty and hostile values, and each must
give a clean run or one line naming the key, the value and what is allowed. In-process through
the real checks a run passes before Hydra makes its folder (mnist_pairs.config.callbacks), accepted
values through a real run; then hostile YAML files, and a few cases through the real CLI (no
traceback, no run folder, no record)."""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hydra.core.hydra_config import HydraConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_pairs.config import compose_config
from mnist_pairs.config.callbacks import check_run
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.results import records
from mnist_pairs.training.data import DataError
from mnist_pairs.training.run import run
from tests.conftest import run_cli

# One model of each family (and the nested branch of a Siamese net), so that every model key is walked.
FAMILIES = ("fcnn_bn_dropout", "cnn3_bn", "resnet", "siamese_lenet_mlp")
SMALL = ("data.n_train=20", "data.n_test=10", "train.epochs=1", "train.batch_size=10", "device=cpu", "device.threads=1")
HOSTILE_STRINGS = ["../../../etc/passwd", "${oc.env:HOME}", "$(touch /tmp/pwned)\n", "x" * 10_000]
BAD_VALUES: list[Any] = [
    "abc",
    True,
    1.5,
    [1, 2],
    {"a": 1},
    None,  # wrong types
    -1,
    0,
    10**12,
    float("nan"),  # out of range
    "",
    [],  # empty
    *HOSTILE_STRINGS,
]


@functools.cache
def _base(synthetic_root: Path, model: str) -> DictConfig:
    out = synthetic_root.parent / "bad_input_runs"
    return compose_config(
        f"model={model}", f"data.root={synthetic_root}", "data.download=false", f"output_root={out}", *SMALL, hydra=True
    )


def base(synthetic_root: Path, model: str) -> DictConfig:
    """A small run of ``model`` composed as the CLI composes it, Hydra's node (its run folder) included."""
    return copy.deepcopy(_base(synthetic_root, model))


def leaf_keys(cfg: DictConfig) -> list[str]:
    """Every key of the task config whose value is not a group of keys (lists are values)."""
    out: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        else:
            out.append(path)

    walk({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}, "")
    return out


def cases(synthetic_root: Path) -> list[tuple[str, str, Any]]:
    """(family, key, value): the non-model keys once (with fcnn_bn_dropout), each family's model keys."""
    out = []
    for family in FAMILIES:
        for key in leaf_keys(base(synthetic_root, family)):
            if family == FAMILIES[0] or key.startswith("model."):
                out += [(family, key, value) for value in BAD_VALUES]
    return out


def with_value(cfg: DictConfig, key: str, value: Any) -> DictConfig:
    one = copy.deepcopy(cfg)
    with open_dict(one):
        OmegaConf.update(one, key, value, merge=False)
    return one


def judge(cfg: DictConfig) -> str | None:
    """The one line the checks before a run give (mnist_pairs.config.callbacks.check_run: what the CLI
    runs before Hydra makes the run's folder), or None when they accept it; anything but a
    ConfigError or DataError escapes and fails the test."""
    try:
        check_run(cfg)
    except (ConfigError, DataError) as error:
        return str(error)
    finally:
        HydraConfig.instance().cfg = None  # check_run sets Hydra's global config, as Hydra would
    return None


def task(cfg: DictConfig) -> DictConfig:
    """The config a run gets (Hydra's node removed, as Hydra removes it)."""
    one = copy.deepcopy(cfg)
    with open_dict(one):
        del one["hydra"]
    return one


def names(message: str, key: str) -> bool:
    """The message is one line and names the key; or, for an error that torch raises while the
    model or optimizer is tried (mnist_pairs.config.dryrun), the group of keys: ``model.* values``."""
    group = key.split(".")[0]
    return "\n" not in message and (key in message or f"{group}.* values" in message)


@pytest.fixture(scope="module")
def tried(synthetic_root, tmp_path_factory) -> dict[str, list]:
    """Every case judged once for the tests below: refused (with its line) or accepted."""
    out: dict[str, list] = {"refused": [], "accepted": []}
    bases = {family: base(synthetic_root, family) for family in FAMILIES}
    for family, key, value in cases(synthetic_root):
        try:
            cfg = with_value(bases[family], key, value)
        except Exception as error:  # OmegaConf refuses to hold it at all: nothing can run with it
            out["refused"].append((family, key, value, f"{key}: {error}"))
            continue
        message = judge(cfg)
        out["refused" if message is not None else "accepted"].append((family, key, value, message or task(cfg)))
    assert not (synthetic_root.parent / "bad_input_runs").exists(), "the checks before a run must not make its folder"
    return out


def test_every_key_is_walked(synthetic_root, tried):
    keys = {key for _, key, _, _ in tried["refused"] + tried["accepted"]}
    for expected in (
        "seed",
        "data.n_train",
        "train.precision",
        "device.seed_batch",
        "optimizer.lr",
        "model.hidden",
        "model.kernels",
        "model.branch.channels",
        "model.combiner_hidden",
        "activation.fn._target_",
        "augment.swap",
    ):
        assert expected in keys
    n = len(tried["refused"]) + len(tried["accepted"])
    print(
        f"\nbad-input suite: {n} cases over {len(keys)} keys: {len(tried['refused'])} refused, {len(tried['accepted'])} accepted and run"
    )


def test_each_refusal_is_one_line_naming_key_and_value(tried):
    bad = [(key, value, message) for _, key, value, message in tried["refused"] if not names(message, key)]
    assert not bad, "\n".join(f"{k}={v!r}: {m}" for k, v, m in bad[:20])


def test_each_accepted_value_gives_a_clean_run(tried, tmp_path):
    """A value the checks accept must train to a record (ok, or diverged: a NaN loss is a result)."""
    seen: set[str] = set()
    for i, (family, key, value, cfg) in enumerate(tried["accepted"]):
        ident = records.config_hash(OmegaConf.to_container(cfg, resolve=True))
        if ident in seen:
            continue
        seen.add(ident)
        record = run(cfg, tmp_path / str(i) / "seed=0")
        assert record["status"] in ("ok", "diverged"), (family, key, value, record["error"])


def test_no_hostile_string_is_accepted_where_it_would_name_a_folder_or_a_target(tried):
    accepted = {(key, repr(value)) for _, key, value, _ in tried["accepted"] if value in HOSTILE_STRINGS}
    for key in (
        "model.name",
        "activation.name",
        "experiment_name",
        "model._target_",
        "optimizer._target_",
        "activation.fn._target_",
    ):
        assert not [v for k, v in accepted if k == key], key


@settings(max_examples=100, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_values_of_every_key_pass_or_get_one_line(synthetic_root, tmp_path_factory, data):
    """Property: any value of any key passes the checks, or is refused with one line naming it."""
    family = data.draw(st.sampled_from(FAMILIES))
    cfg = base(synthetic_root, family)
    key = data.draw(st.sampled_from(leaf_keys(cfg)))
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
    value = data.draw(
        st.one_of(leaf, st.lists(leaf, max_size=4), st.dictionaries(st.text(max_size=5), leaf, max_size=2))
    )
    try:
        one = with_value(cfg, key, value)
    except Exception:
        return  # OmegaConf does not hold such a value (it could not come from a YAML or the command line)
    message = judge(one)
    assert message is None or names(message, key), (key, value, message)


# ---- hostile YAML beyond a plain _target_ -------------------------------------------------------

HOSTILE_MODELS = {
    "save_through_import": "_target_: torch.nn.functional.torch.save\n_args_: [{a: 1}, /tmp/pwned_by_yaml]\n",
    "system_through_import": "_target_: mnist_pairs.train.os.system\n_args_: ['touch /tmp/pwned_by_yaml']\n",
    "partial_system": "_target_: mnist_pairs.train.os.system\n_partial_: true\n",
    "function_of_ours": "_target_: mnist_pairs.results.records.write_record\n_args_: [/tmp/pwned_by_yaml, {}]\n",
    "nested_in_args": "_target_: torch.nn.Sequential\n_args_:\n  - _target_: torch.nn.functional.torch.save\n    _args_: [{a: 1}, /tmp/pwned_by_yaml]\n",
    "nested_not_recursive": "_target_: mnist_pairs.models.FCNN\n_recursive_: false\nactivation:\n  _target_: torch.nn.functional.torch.save\n",
    "nested_in_a_list": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nhidden: [{_target_: torch.nn.functional.torch.save}]\n",
    "convert_all": "_target_: mnist_pairs.models.FCNN\n_convert_: all\nactivation:\n  _target_: mnist_pairs.train.os.system\n",
    "created_by_a_resolver": '_target_: mnist_pairs.models.FCNN\nactivation: "${oc.create:{_target_: torch.nn.functional.torch.save}}"\n',
    "decoded_by_a_resolver": "_target_: mnist_pairs.models.FCNN\nactivation: \"${oc.decode:'{_target_: mnist_pairs.train.os.system}'}\"\n",
    "environment_into_a_name": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nname: ${oc.env:HOME}\n",
    "environment_escaped_for_later": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nname: \\${oc.env:HOME}\n",
    "resolves_to_an_interpolation": "_target_: mnist_pairs.models.Siamese\nbranch:\n  _target_: mnist_pairs.models.ConvBranch\n  activation: ${activation.fn}\n"
    "activation: ${activation.fn}\ndollar: $\ncombiner_input: ${model.dollar}{oc.env:HOME}\n",
    "unset_environment": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nhidden: ${oc.env:MNIST_PAIRS_SURELY_UNSET}\n",
    "deeply_nested": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nhidden: "
    + "[" * 50
    + "1"
    + "]" * 50
    + "\n",
    "huge_width": "_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nhidden: [100000000, 100000000]\n",
    "huge_string": "_target_: mnist_pairs.models.CNN\nactivation: ${activation.fn}\nhead: " + "x" * 1_000_000 + "\n",
    "not_a_model": "_target_: torch.optim.Adam\n_args_: [[]]\n",
}


@pytest.fixture(scope="module")
def hostile_conf(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile_conf")
    (folder / "model").mkdir()
    for name, body in HOSTILE_MODELS.items():
        (folder / "model" / f"{name}.yaml").write_text(f"name: {name}\n{body}" if not body.count("\nname:") else body)
    return folder


@pytest.mark.parametrize("name", sorted(HOSTILE_MODELS))
def test_hostile_model_yaml_is_refused_before_anything_is_built(hostile_conf, synthetic_root, tmp_path, name):
    pwned = Path("/tmp/pwned_by_yaml")
    pwned.unlink(missing_ok=True)
    cfg = compose_config(
        f"hydra.searchpath=[file://{hostile_conf}]",
        f"model={name}",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        *SMALL,
        hydra=True,
    )
    message = judge(cfg)
    assert message is not None, name
    assert "\n" not in message and "is not allowed" in message and message.split("=")[0].startswith("model"), message
    assert not pwned.exists() and not list(tmp_path.iterdir())


# ---- the real CLI: one line, exit non-zero, no traceback, no folder, no record ------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("seed=abc",), "error: seed='abc' is not allowed: an integer >= 0"),
        (
            ("model=cnn3", "model.kernels=[3,5,9]"),
            "error: model.kernels=[3, 5, 9] is not allowed: conv layer 2 (kernel 9) with model.padding=0 leaves no pixels",
        ),
        (("model.hidden=abc",), "error: model.hidden='abc' is not allowed: a list of integers"),
        (
            ("+model.x._target_=torch.nn.functional.torch.save",),
            "error: model.x._target_='torch.nn.functional.torch.save' is not allowed",
        ),
        (
            ("model.name=${oc.env:HOME}",),
            "error: model.name='${oc.env:HOME}' is not allowed: environment variables (oc.env) may only set",
        ),
        (("experiment_name=../../escape",), "error: experiment_name='../../escape' is not allowed"),
        (("device.seed_batch=[0,1]", "hydra.run.dir=RUN_DIR/mine"), "error: hydra.run.dir="),
        (
            ("data.n_train=400",),
            "error: data.n_train=400 is not allowed: 400 pairs need 800 distinct images and the train split",
        ),
    ],
)
def test_cli_refuses_with_one_line_and_leaves_nothing(tmp_path, synthetic_root, args, expected):
    args = tuple(a.replace("RUN_DIR", str(tmp_path)) for a in args)
    done = run_cli(f"data.root={synthetic_root}", "data.download=false", f"output_root={tmp_path}", *SMALL, *args)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not list(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))  # no run folder, no record


def test_cli_honours_hydra_run_dir_for_one_seed(tmp_path, synthetic_root):
    mine = tmp_path / "my_run"
    done = run_cli(f"data.root={synthetic_root}", "data.download=false", *SMALL, f"hydra.run.dir={mine}")
    assert done.returncode == 0, done.stderr
    assert records.read_record(mine / records.RECORD_FILE)["status"] == "ok"


def test_numbers_that_are_not_finite_are_refused_where_a_number_is_expected(synthetic_root, tmp_path):
    for key in ("optimizer.lr", "model.aux_weight", "train.label_smoothing", "augment.rotate_deg", "model.dropout"):
        model = "siamese_cnn_aux" if key == "model.aux_weight" else "fcnn_dropout"
        for value in (math.nan, math.inf):
            message = judge(with_value(base(synthetic_root, model), key, value))
            assert message is not None and key in message, (key, value, message)


# ---- what Hydra instantiates itself: the hydra node -----------------------------------------------

HOSTILE_HYDRA_NODES = {
    "callback_saves_a_file": "hydra:\n  callbacks:\n    x:\n      _target_: torch.nn.functional.torch.save\n"
    "      _args_: [{a: 1}, PWNED]\n",
    "callback_nested_in_args": "hydra:\n  callbacks:\n    x:\n      _target_: hydra.experimental.callback.Callback\n"
    "      y: {_target_: torch.nn.functional.torch.save, _args_: [{a: 1}, PWNED]}\n",
    "launcher_of_another_kind": "hydra:\n  launcher:\n    _target_: mnist_pairs.train.os.system\n",
    "logging_handler_runs_a_command": "hydra:\n  job_logging:\n    handlers:\n      console:\n"
    "        class: mnist_pairs.train.os.system\n        command: touch PWNED\n",
    "logging_factory_runs_a_command": "hydra:\n  hydra_logging:\n    formatters:\n      simple:\n"
    "        (): mnist_pairs.train.os.system\n        command: touch PWNED\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HYDRA_NODES))
def test_a_preset_cannot_make_hydra_instantiate_anything_before_the_checks(tmp_path, synthetic_root, name):
    """An experiment preset on a search path names what Hydra itself builds (a callback, the
    launcher, a logging handler): refused in one line before Hydra configures its logging or
    instantiates a callback, so the file it names is never written and no folder is made."""
    pwned = tmp_path / "pwned"
    presets = tmp_path / "presets" / "experiment"
    presets.mkdir(parents=True)
    body = HOSTILE_HYDRA_NODES[name].replace("PWNED", str(pwned))
    (presets / "evil.yaml").write_text(f"# @package _global_\n{body}")
    out = tmp_path / "out"
    for mode in ((), ("-m", "seed=0,1")):
        done = run_cli(
            *mode,
            f"hydra.searchpath=[file://{tmp_path / 'presets'}]",
            "experiment=evil",
            f"data.root={synthetic_root}",
            "data.download=false",
            f"output_root={out}",
            *SMALL,
        )
        assert done.returncode != 0, done.stdout + done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: hydra.") and "is not allowed" in last, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert not pwned.exists() and not out.exists()


# ---- folders and programs the run needs: named before any work ---------------------------------


def unmakeable_folders(tmp_path: Path) -> dict[str, Path]:
    """Folders that cannot be made: one under a regular file, one in /proc, and (for a user other
    than root, whom permission bits do not stop) one in a read-only folder."""
    (tmp_path / "afile").write_text("")
    out = {"under_a_file": tmp_path / "afile" / "sub", "in_proc": Path("/proc/nope")}
    if os.geteuid() != 0:
        (tmp_path / "read_only").mkdir(mode=0o500)
        out["in_a_read_only_folder"] = tmp_path / "read_only" / "sub"
    return out


@pytest.mark.parametrize("mode", [(), ("-m", "seed=0,1")])
def test_an_output_root_that_cannot_be_made_is_refused_in_one_line(tmp_path, synthetic_root, mode):
    for name, folder in unmakeable_folders(tmp_path).items():
        before = sorted(tmp_path.rglob("*"))
        done = run_cli(*mode, f"data.root={synthetic_root}", "data.download=false", *SMALL, f"output_root={folder}")
        assert done.returncode != 0, name
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: output_root='{folder}' is not allowed: a folder that can be made"), done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert sorted(tmp_path.rglob("*")) == before, name  # nothing made, no probe left behind


def test_a_data_root_that_cannot_be_written_is_refused_when_mnist_must_be_fetched_into_it(synthetic_root, tmp_path):
    for folder in unmakeable_folders(tmp_path).values():
        cfg = with_value(with_value(base(synthetic_root, "fcnn"), "data.root", str(folder)), "data.download", True)
        message = judge(cfg)
        assert message is not None and message.startswith(f"data.root='{folder}' is not allowed: MNIST is"), message
        assert "\n" not in message


def test_a_slurm_sweep_without_srun_is_refused_in_one_line_before_any_job(tmp_path, synthetic_root):
    path = ":".join(p for p in os.environ["PATH"].split(":") if p and not (Path(p) / "srun").exists())
    out = tmp_path / "out"
    args = ("-m", "launcher=slurm", "seed=0,1", f"data.root={synthetic_root}", *SMALL, f"output_root={out}")
    done = run_cli(*args, env={"PATH": path})
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "error: launcher=slurm needs SLURM's srun on PATH; none found here"
    assert "Traceback" not in done.stderr + done.stdout
    assert not out.exists()
