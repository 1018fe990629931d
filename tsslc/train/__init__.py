"""Training: :func:`tsslc.train.trainer.fit` (the engine) and its data plumbing."""
