"""Backbones (feature extractors) and the model wrapper with named classifier heads."""

from . import resnet18_cifar, resnet_cifar, small_cnn, timm_models  # noqa: F401  (register backbones)
from .wrapper import SSLTModel, build_model

__all__ = ["SSLTModel", "build_model"]
