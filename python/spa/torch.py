"""`spa.torch`: the PyTorch adapter (see spa.frameworks.torch_adapter); imports torch when used."""

from spa.frameworks.torch_adapter import TorchPruneResult, export, prune
from spa.providers.torch_provider import TorchProvider

__all__ = ["TorchProvider", "TorchPruneResult", "export", "prune"]
