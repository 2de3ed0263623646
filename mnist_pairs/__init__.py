"""mnist_pairs: a Hydra-configured benchmark of architectures on MNIST digit-pair comparison."""

__version__ = "0.1.0"
