"""Training: the trainer, run folders, checkpoints and data-parallel training."""
