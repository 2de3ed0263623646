"""Every model x activation composes through Hydra, builds, and runs a forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_pairs.config import CONF_DIR, compose_config
from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.models import build_model
from tests.conftest import ACTIVATIONS, MODELS

# Parameter counts of our implementation of the report's text (docs/protocol.md gives the authors').
EXPECTED_PARAMS = {
    "fcnn": 1_396_002,  # 392*1000+1000 + 1000*1000+1000 + 1000*2+2
    "fcnn_dropout": 1_396_002,
    "fcnn_bn": 1_400_002,  # + 2 BatchNorm1d(1000)
    "fcnn_bn_dropout": 1_400_002,
    "cnn3": 10_298,  # the authors' code: 10,298
    "cnn4": 10_298,
    "cnn3_bn": 10_378,  # the authors' code: 10,378
    "cnn4_bn": 10_378,
    "resnet": 43_774,  # channel mean -> Linear(196, 2), no BN (the authors': 43,694)
    "siamese_cnn": 45_568,
    "siamese_cnn_aux": 45_568,
    "siamese_resnet": 45_380,
    "siamese_resnet_aux": 45_380,
    # beyond the report (issue 6): LeNet-style branch with BN + dropout, MLP head on the digit distributions
    "siamese_lenet_mlp": 128_908,  # conv5 32 (832) + BN + conv5 64 (51,264) + BN + 576->128->10 + 20->64->2
    "siamese_resnet_mlp": 45_260,  # the report's ResNet branch with BN and a spatial mean + 20->64->2
}
EXPECTED_LR = {
    "fcnn": 1e-3,
    "fcnn_bn": 1e-3,
    "fcnn_dropout": 2e-4,
    "fcnn_bn_dropout": 2e-4,
    "cnn3": 4e-4,
    "cnn4": 4e-4,
    "cnn3_bn": 4e-4,
    "cnn4_bn": 4e-4,
    "resnet": 5e-3,
    "siamese_cnn": 5e-3,
    "siamese_cnn_aux": 5e-3,
    "siamese_resnet": 5e-3,
    "siamese_resnet_aux": 5e-3,
    "siamese_lenet_mlp": 1e-3,
    "siamese_resnet_mlp": 5e-3,
}
ACTIVATION_TYPES = {"relu": nn.ReLU, "tanh": nn.Tanh, "leakyrelu": nn.LeakyReLU}


def test_the_report_models_and_ours_are_all_there():
    assert set(MODELS) == set(EXPECTED_PARAMS)
    assert set(ACTIVATIONS) == set(ACTIVATION_TYPES)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_and_activation_composes_and_runs(compose_cfg, model_name, activation):
    cfg = compose_cfg(f"model={model_name}", f"activation={activation}")
    validate(cfg)
    assert cfg.model.name == model_name and cfg.activation.name == activation
    model = build_model(cfg.model)
    out = model(torch.rand(5, 2, 14, 14) * 255)
    assert out.shape == (5, 2)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[model_name]
    # the activation reaches every activation site: no other activation type is left anywhere
    kinds = {type(m) for m in model.modules() if isinstance(m, tuple(ACTIVATION_TYPES.values()))}
    assert kinds == {ACTIVATION_TYPES[activation]}


@pytest.mark.parametrize("model_name", MODELS)
def test_each_model_selects_its_report_learning_rate(compose_cfg, model_name):
    assert compose_cfg(f"model={model_name}").optimizer.lr == pytest.approx(EXPECTED_LR[model_name])


def test_learning_rate_preset_and_number_on_the_command_line(compose_cfg):
    assert compose_cfg("model=fcnn", "lr=conv").optimizer.lr == pytest.approx(4e-4)
    assert compose_cfg("model=fcnn", "optimizer.lr=0.0123").optimizer.lr == pytest.approx(0.0123)
    cfg = compose_cfg("model=cnn3", "optimizer=sgd")
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.lr == pytest.approx(4e-4)


def test_aux_models_weight_the_auxiliary_loss(compose_cfg):
    assert compose_cfg("model=siamese_cnn").model.aux_weight == 0
    assert compose_cfg("model=siamese_resnet_aux").model.aux_weight == 1.0
    assert compose_cfg("model=siamese_cnn_aux", "model.aux_weight=0.3").model.aux_weight == 0.3


def test_the_authors_code_options(compose_cfg):
    """docs/protocol.md's behaviours of the authors' code are options with the report's default off."""
    fc = build_model(
        compose_cfg("model=fcnn_bn_dropout", "model.dropout_layers=[1]", "model.batchnorm_layers=[1]").model
    )
    assert sum(isinstance(m, nn.Dropout) for m in fc.modules()) == 1
    assert sum(isinstance(m, nn.BatchNorm1d) for m in fc.modules()) == 1
    assert sum(p.numel() for p in fc.parameters()) == 1_398_002

    cnn = build_model(
        compose_cfg("model=cnn3_bn", "model.bn_after_activation=true", "model.activation_on_logits=true").model
    )
    first = cnn.net[0]
    assert [type(m) for m in first] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    assert (cnn(torch.randn(20, 2, 14, 14) * 255) >= 0).all()  # ReLU on the logits

    authors_resnet = build_model(compose_cfg("model=resnet", "model.batchnorm=true", "model.pool=spatial").model)
    assert sum(p.numel() for p in authors_resnet.parameters()) == 43_694  # docs/protocol.md's count


def test_siamese_shares_one_branch_and_can_swap_the_order(compose_cfg):
    model = build_model(compose_cfg("model=siamese_cnn").model).eval()
    swapped = build_model(compose_cfg("model=siamese_cnn", "model.swap_order=true").model).eval()
    swapped.load_state_dict(model.state_dict())
    x = torch.rand(4, 2, 14, 14) * 255
    _logits, d1, d2 = model(x, return_digits=True)
    assert torch.allclose(d1, model.branch(x[:, :1]), atol=1e-5) and torch.allclose(
        d2, model.branch(x[:, 1:]), atol=1e-5
    )
    assert torch.allclose(swapped(x), model(x.flip(1)), atol=1e-5)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=0", "train.epochs=0"),
        ("train.batch_size=-5", "train.batch_size=-5"),
        ("optimizer.lr=0", "optimizer.lr=0"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1"),
        ("data.n_train=30001", "data.n_train=30001"),
        ("data.n_test=5001", "data.n_test=5001"),
        ("data.n_test=0", "train.eval_every_epoch=True"),  # no test pairs, yet a test history asked for
        ("device.seeds_per_job=0", "device.seeds_per_job=0"),
        ("data.scale=zscore", "data.scale='zscore'"),
        ("seed=-1", "seed=-1"),
        ("model.aux_weight=-1", "model.aux_weight=-1"),
        ("+model.extra._target_=os.system", "model.extra._target_='os.system'"),
        ("data.n_val=1000", "data.n_val=1000"),
        ("train.early_stop_patience=5", "train.early_stop_patience=5"),  # without data.n_val
        ("train.lr_schedule=step", "train.lr_schedule='step'"),
        ("train.label_smoothing=1.0", "train.label_smoothing=1.0"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1"),
        ("augment.rotate_deg=-3", "augment.rotate_deg=-3"),
        ("augment.translate_px=9", "augment.translate_px=9"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(compose_cfg, override, key):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg("model=siamese_cnn", override))
    message = str(info.value)
    assert message.startswith(key) and "allowed" in message


def test_cuda_without_a_gpu_is_refused(compose_cfg):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="device='cuda'.*no.*GPU|device='cuda'.*none"):
        validate(compose_cfg("device=cuda"))


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes_and_validates(name):
    """Each preset, with its Hydra node (launcher, sweeper), composes and passes validation."""
    cfg = compose_config(f"experiment={name}", "model=siamese_lenet_mlp", "device=cpu", hydra=True)
    validate(cfg)
    assert cfg.experiment_name and cfg.hydra.sweeper._target_


def test_keys_outside_a_runs_identity_stay_out_of_its_folder_name():
    """A key that does not change results (records.NON_IDENTITY_KEYS) must not change the run's
    folder either: Hydra's override_dirname must exclude it, and each device.* and tracking.* key
    by name."""
    from mnist_pairs.results.records import NON_IDENTITY_KEYS

    cfg = compose_config(hydra=True)
    excluded = set(cfg.hydra.job.config.override_dirname.exclude_keys)
    tracking = compose_config("tracking=mlflow").tracking
    expected = {*NON_IDENTITY_KEYS, *(f"device.{key}" for key in cfg.device), *(f"tracking.{key}" for key in tracking)}
    assert expected <= excluded, sorted(expected - excluded)


def test_the_key_table_of_the_docs_is_the_schemas():
    """docs/configuration.md's table is written from the schema (python -m mnist_pairs.keys --write)."""
    from mnist_pairs.keys import DOC, with_table

    text = DOC.read_text()
    assert with_table(text) == text, "python -m mnist_pairs.keys --write"


@pytest.mark.parametrize("group", ["data", "train", "device", "augment", "tracking", "optimizer"])
def test_every_plain_key_of_every_preset_is_in_the_schema(group):
    """A group's keys are the schema's, whichever preset composes it (no key lives in YAML only)."""
    from mnist_pairs.config.schema import key_table

    documented = {row["key"] for row in key_table()}
    presets = [p.stem for p in (CONF_DIR / group).glob("*.yaml")] if (CONF_DIR / group).is_dir() else []
    for choice in [None, *presets]:
        cfg = compose_config(*([f"{group}={choice}"] if choice else []))
        keys = {f"{group}.{k}" for k in cfg[group] if not str(k).startswith("_")}
        assert keys <= documented, (choice, keys - documented)


@pytest.mark.parametrize("launcher", ["basic", "joblib", "slurm", "submitit_local"])
@pytest.mark.parametrize("sweeper", ["grid", "optuna"])
def test_what_hydra_instantiates_for_each_launcher_and_sweeper_passes_the_allowlist(launcher, sweeper):
    from hydra.core.hydra_config import HydraConfig

    from mnist_pairs.config.targets import check_hydra_node

    cfg = compose_config(f"launcher={launcher}", f"sweeper={sweeper}", hydra=True)
    HydraConfig.instance().set_config(cfg)
    try:
        check_hydra_node(cfg.hydra)
    finally:
        HydraConfig.instance().cfg = None
