"""The training loop, its callbacks (logging included) and checkpoints."""
from dynrep.training.callbacks import Callback, Checkpoint, NonFiniteLossError, ProgressBar
from dynrep.training.checkpoint import CheckpointError, check_destination, load_checkpoint, save_checkpoint
from dynrep.training.evaluation import PeriodicEvaluation
from dynrep.training.logging import JsonlLogger, TensorBoardLogger, WandbLogger, metrics_path
from dynrep.training.signals import TrainingInterrupted
from dynrep.training.trainer import Trainer
from dynrep.training.validation import BestValidation

__all__ = ["BestValidation", "Callback", "Checkpoint", "CheckpointError", "JsonlLogger", "NonFiniteLossError",
           "PeriodicEvaluation", "ProgressBar", "TensorBoardLogger", "Trainer", "TrainingInterrupted", "WandbLogger",
           "check_destination", "load_checkpoint", "metrics_path", "save_checkpoint"]
