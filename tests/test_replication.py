"""The `replication` preset composes to exactly the authors' protocol (docs/protocol.md), and the
authors' training behaviours do what they say."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_pairs.config import compose_config
from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.models import CNN, FCNN, Siamese, build_model
from mnist_pairs.training.data import make_pairs
from mnist_pairs.training.engine import fit
from mnist_pairs.training.seeding import generator

ADVANCED = ["siamese_resnet_aux", "siamese_resnet", "resnet", "siamese_cnn_aux", "siamese_cnn"]
BASIC = ["fcnn", "fcnn_dropout", "fcnn_bn_dropout", "cnn3", "cnn4", "cnn3_bn", "cnn4_bn"]


def test_replication_preset_sets_the_authors_protocol():
    cfg = compose_config("experiment=replication", hydra=True)
    assert cfg.experiment_name == "replication"
    assert dict(cfg.train) == {
        "epochs": 50,
        "batch_size": 250,
        "shuffle": False,
        "monitor": "train_mode_forward",
        "eval_every_epoch": True,
        "eval_interval": 1,
        "aux_schedule": "alternating_full_batch",
        "zero_grad": "zero",
        # beyond the report, all off
        "label_smoothing": 0.0,
        "lr_schedule": "none",
        "early_stop_patience": 0,
        "precision": "fp32",
        "save_model": False,
    }
    assert cfg.data.scale == "raw" and (cfg.data.n_train, cfg.data.n_test) == (1000, 1000)
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.device.threads == 1
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    advanced, *basic = cfg.hydra.sweeper.grids
    assert dict(advanced) == {
        "model": ",".join(f"authors/{m}" for m in ADVANCED),
        "activation": "relu",
        "seed": "range(0,10)",
    }
    basic_models = ",".join(f"authors/{m}" for m in BASIC)
    assert [dict(g) for g in basic] == [  # independent seeds for each nominal label
        {"model": basic_models, "activation": "relu", "seed": "range(0,15)"},
        {"model": basic_models, "activation": "tanh", "seed": "range(15,30)"},
        {"model": basic_models, "activation": "leakyrelu", "seed": "range(30,45)"},
    ]


@pytest.mark.parametrize("activation", ["relu", "tanh", "leakyrelu"])
@pytest.mark.parametrize("model_name", ADVANCED + BASIC)
def test_the_authors_models_use_relu_whatever_the_label(model_name, activation):
    cfg = compose_config(
        "experiment=replication", f"model=authors/{model_name}", f"activation={activation}", hydra=True
    )
    validate(cfg)
    assert cfg.model.name == model_name and cfg.activation.name == activation
    model = build_model(cfg.model)
    kinds = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.Tanh, nn.LeakyReLU))}
    assert kinds == {nn.ReLU}
    expected_lr = {"fcnn": 1e-3, "fcnn_dropout": 2e-4, "fcnn_bn_dropout": 2e-4}.get(
        model_name, 4e-4 if "cnn" in model_name and "siamese" not in model_name else 5e-3
    )
    assert cfg.optimizer.lr == pytest.approx(expected_lr)


def test_the_authors_architectures():
    def model(name):
        return build_model(compose_config("experiment=replication", f"model=authors/{name}", hydra=True).model)

    for name in ("fcnn_dropout", "fcnn_bn_dropout"):  # dropout (and BN) on the 2nd hidden layer only
        fc = model(name)
        hidden = [m for m in fc.net if isinstance(m, nn.Sequential)]
        assert [any(isinstance(x, nn.Dropout) for x in h) for h in hidden] == [False, True]
        assert [any(isinstance(x, nn.BatchNorm1d) for x in h) for h in hidden] == [False, name == "fcnn_bn_dropout"]
    assert [type(m) for m in model("fcnn_bn_dropout").net[2]] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    for name in ("cnn3", "cnn4", "cnn3_bn", "cnn4_bn"):  # the activation on the logits, BN after it
        cnn = model(name)
        assert isinstance(cnn.net[-1][-1], nn.ReLU)
        assert sum(p.numel() for p in cnn.parameters()) == (10_378 if name.endswith("bn") else 10_298)
        if name.endswith("bn"):
            assert [type(m) for m in cnn.net[0]] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    assert sum(p.numel() for p in model("resnet").parameters()) == 43_694
    for name in ("siamese_cnn", "siamese_resnet_aux"):
        net = model(name)
        assert net.swap_order and not net.joint_branch_batch and len(net.combiner) == 1
        assert net.combiner[0].in_features == 20 and net.combiner[0].out_features == 2
    branch = model("siamese_resnet").branch
    assert branch.pool == "spatial" and any(isinstance(m, nn.BatchNorm2d) for m in branch.modules())


def test_ablation_switches_one_behaviour_per_grid():
    grids = compose_config("experiment=replication_ablation", hydra=True).hydra.sweeper.grids
    switched = [sorted(set(g) - {"model", "activation", "seed"}) for g in grids]
    assert switched == [
        ["train.aux_schedule"],
        ["model.activation_on_logits"],
        ["data.scale"],
        ["model.activation"],
        ["model.activation"],
    ]
    cfg = compose_config(
        "experiment=replication_ablation",
        "model=authors/cnn3",
        "activation=tanh",
        "model.activation={_target_:torch.nn.Tanh,_partial_:true}",
        hydra=True,
    )
    assert {type(m) for m in build_model(cfg.model).modules() if isinstance(m, (nn.ReLU, nn.Tanh))} == {nn.Tanh}


def _fit_counting_steps(model, settings, synthetic_root):
    train, test = make_pairs(str(synthetic_root), 100, 20, generator(0, "data"), download=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    fit(model, optimizer, train, test, settings, generator(0, "shuffle"))
    return len(steps), model


def test_alternating_aux_schedule_takes_two_full_set_steps_per_iteration(synthetic_root):
    torch.manual_seed(0)
    siamese = Siamese(
        branch=CNN(nn.ReLU, in_channels=1, channels=(4,), kernels=(3,), n_classes=10),
        activation=nn.ReLU,
        aux_weight=1.0,
    )
    settings = TrainSettings(
        epochs=2, batch_size=25, aux_schedule="alternating_full_batch", zero_grad="zero", eval_every_epoch=False
    )
    n_steps, trained = _fit_counting_steps(siamese, settings, synthetic_root)
    assert n_steps == 2 * 4 * 2  # 2 steps per mini-batch iteration, 4 iterations, 2 epochs
    assert all(p.grad is not None for p in trained.parameters())  # zero-filled, not None
    n_steps, _ = _fit_counting_steps(
        siamese, TrainSettings(epochs=2, batch_size=25, eval_every_epoch=False), synthetic_root
    )
    assert n_steps == 4 * 2


def test_monitoring_forward_in_train_mode_updates_batchnorm_statistics(synthetic_root):
    for monitor, extra in (("batches", 0), ("train_mode_forward", 3)):
        torch.manual_seed(0)
        model = FCNN(nn.ReLU, hidden=(8,), batchnorm=True)
        _fit_counting_steps(
            model, TrainSettings(epochs=3, batch_size=50, monitor=monitor, eval_every_epoch=False), synthetic_root
        )
        assert model.net[1][1].num_batches_tracked.item() == 2 * 3 + extra
