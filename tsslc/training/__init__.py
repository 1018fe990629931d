"""Training.

- :mod:`tsslc.training.trainer`: the engine — ``fit`` (in memory), ``train_step``, ``train_epoch``,
  ``evaluate`` (AdamW, gradient-norm clip 1, weights clamped to ±4, prediction by spike count).
- :mod:`tsslc.training.checkpoint`: ``save_checkpoint`` / ``load_checkpoint`` (``weights_only``
  loadable, written atomically with :mod:`tsslc.atomic`).
- :mod:`tsslc.training.run`: ``train_run`` — a run folder with config.yaml, metrics.json and a
  checkpoint per epoch, exact ``resume``, DistributedDataParallel under torchrun.
"""
