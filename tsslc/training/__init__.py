"""Training.

- :mod:`tsslc.training.trainer`: the engine — ``fit`` (in memory), ``train_step``, ``train_epoch``,
  ``evaluate`` / ``evaluate_detailed`` (AdamW, gradient-norm clip 1, weights clamped to ±4;
  prediction by the config's rule: spike count, or the summed output PSC under the authors'
  recipe; firing rates of every spiking layer).
- :mod:`tsslc.training.health`: ``diagnose`` — a silent output layer or a loss that does not
  move, reported with the layer and its firing rate.
- :mod:`tsslc.training.checkpoint`: ``save_checkpoint`` / ``load_checkpoint`` (``weights_only``
  loadable, written atomically with :mod:`tsslc.atomic`).
- :mod:`tsslc.training.run`: ``train_run`` — a run folder with config.yaml, metrics.json and a
  checkpoint per epoch (written before the evaluation too), exact ``resume``,
  DistributedDataParallel under torchrun.
"""
