"""The published numbers: the project's own copy (published_results.csv, from the authors'
aggregated results; SDs are 1 SD, the report's "±" is 2 SD), mapped to our model names."""

from __future__ import annotations

from importlib import resources

import pandas as pd

AUTHORS_MODELS = {
    "FullyConnected": "fcnn",
    "DropoutFullyConnected": "fcnn_dropout",
    "DropoutFullyConnectedBatchNorm": "fcnn_bn_dropout",
    "BasicConvolutional": "cnn3",
    "BasicConvolutionalBN": "cnn3_bn",
    "BasicFullyConvolutional": "cnn4",
    "BasicFullyConvolutionalBN": "cnn4_bn",
    "ResNet": "resnet",
    "SiameseNet": "siamese_cnn",
    "SiameseNetAuxiliary": "siamese_cnn_aux",
    "SiameseNetResNet": "siamese_resnet",
    "SiameseNetResNetAuxiliary": "siamese_resnet_aux",
}
AUTHORS_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "LeakyReLU": "leakyrelu"}
SOURCES = {"gpu": "results_gpu.csv", "cpu": "results_cpu.csv"}


def published(source: str = "gpu") -> pd.DataFrame:
    """One row per published (model, nominal activation): our names, n, test and train accuracy
    means and SDs, time. ``gpu`` is the final protocol of the report's table; ``cpu`` an older run."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: allowed are {sorted(SOURCES)}")
    with resources.files("mnist_pairs").joinpath("published_results.csv").open() as f:
        table = pd.read_csv(f)
    table = table[table["source"] == SOURCES[source]].copy()
    table["model"] = table["model"].map(AUTHORS_MODELS)
    table["activation"] = table["activation_nominal"].map(AUTHORS_ACTIVATIONS)
    return table.rename(columns={"n_runs": "n"}).reset_index(drop=True)


# Other public course reports on this exact task (1000 training pairs, 1000 test pairs), as
# PROTOCOL.md lists them: claimed mean test accuracy and SD (n where given). One of them tuned on
# the test set; these are claims, not reproduced here.
PEERS = pd.DataFrame(
    [
        ("peer: LeNet-style shared branch + aux loss + MLP head", 0.958, 0.006, None),
        ("peer: the same with data augmentation", 0.980, 0.005, None),
        ("peer: twin LeNet (BN, dropout) + MLP head, aux loss", 0.9497, 0.0090, 32),
        ("peer: CNN with weight sharing + aux", 0.914, 0.015, None),
    ],
    columns=["source", "mean", "sd", "n"],
)
