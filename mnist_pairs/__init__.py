"""mnist_pairs: a Hydra-configured benchmark of architectures on MNIST digit-pair comparison.

Importing the package registers the configuration schema in Hydra's ConfigStore and the resolvers
conf/config.yaml reads, so that conf/ composes the same from any entrypoint."""

from mnist_pairs.config import schema as _schema

__version__ = "0.1.0"

_schema.register()
_schema.register_resolvers()
