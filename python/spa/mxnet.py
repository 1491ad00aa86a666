"""`spa.mxnet`: the MXNet 1.9 Gluon adapter (see spa.frameworks.mxnet_adapter); imports mxnet when used."""

from spa.frameworks.mxnet_adapter import MXNetPruneResult, export, prune

__all__ = ["MXNetPruneResult", "export", "prune"]
