"""`spa.paddle`: the PaddlePaddle adapter (see spa.frameworks.paddle_adapter); imports paddle when used."""

from spa.frameworks.paddle_adapter import PaddlePruneResult, export, prune

__all__ = ["PaddlePruneResult", "export", "prune"]
