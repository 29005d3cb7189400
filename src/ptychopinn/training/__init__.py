"""training stage: :func:`~ptychopinn.training.trainer.train` (loop, checkpoints, resume, DDP),
:class:`~ptychopinn.training.config.TrainConfig` and the model bundle
(:func:`~ptychopinn.model.bundle.load_bundle`). Nothing is imported here; use the modules."""
