"""Training: strategies, losses, the loop with checkpoints/resume and DDP, and evaluation."""

from ofa_edge.train.config import STRATEGIES, TrainConfig
from ofa_edge.train.evaluate import evaluate, evaluate_subnet
from ofa_edge.train.loop import TrainingInterrupted, TrainResult, train

__all__ = ["STRATEGIES", "TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "evaluate_subnet",
           "train"]
