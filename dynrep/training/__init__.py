"""The training loop, its callbacks and checkpoints."""
from dynrep.training.callbacks import Callback, Checkpoint, NaNGuard, NonFiniteLossError, ProgressBar
from dynrep.training.checkpoint import CheckpointError, check_destination, load_checkpoint, save_checkpoint
from dynrep.training.signals import TrainingInterrupted
from dynrep.training.trainer import Trainer
from dynrep.training.validation import BestValidation

__all__ = ["BestValidation", "Callback", "Checkpoint", "CheckpointError", "NaNGuard", "NonFiniteLossError", "ProgressBar",
           "Trainer", "TrainingInterrupted", "check_destination", "load_checkpoint", "save_checkpoint"]
