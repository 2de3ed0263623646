"""Model families. Each family is one class whose options are plain constructor arguments, so a
variant is a YAML file under conf/model/ with `_target_: mnist_pairs.models.<Family>`."""

from mnist_pairs.models.cnn import CNN
from mnist_pairs.models.fcnn import FCNN
from mnist_pairs.models.resnet import ResNet
from mnist_pairs.models.siamese import ConvBranch, Siamese

__all__ = ["CNN", "FCNN", "ResNet", "Siamese", "ConvBranch"]
