"""Is the network alive? Warnings for an epoch whose accuracy would otherwise mislead.

A spiking network whose output layer stays silent predicts class 0 for every sample (every
count, every summed PSC is 0) and so reports 1/n_class accuracy without any error. Its loss
does not move either: with no output spike the kernel loss per sample is ½ Σ_t ā[t]² and the
count loss ½ T (desired/T)², whatever the input. :func:`diagnose` looks at one epoch's
metrics row (:func:`tsslc.training.trainer.train_epoch` and
:meth:`tsslc.training.trainer.Evaluation.row`) and returns one line per problem:

- the output layer fires fewer than :data:`DEAD_RATE` spikes per neuron per step over the
  test set (naming the first spiking layer that is that quiet: where the activity dies);
- every training step of the epoch had the same loss per sample (relative spread below
  :data:`FLAT_LOSS`), or the epoch's training loss equals the previous epoch's.

The lines are printed by ``tsslc train`` and kept in ``metrics.json`` (``warnings`` of each
epoch row and of the whole run).
"""

from __future__ import annotations

#: spikes per neuron per step below which a layer counts as silent (a trained output layer
#: fires about 0.1: the correct neuron most of the window, the others rarely)
DEAD_RATE = 1e-3
#: relative spread of the per-sample step losses below which the loss "did not move"
FLAT_LOSS = 1e-6


class TrainingHealthWarning(UserWarning):
    """A silent network or a loss that does not move (see :func:`diagnose`)."""


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= FLAT_LOSS * max(abs(a), abs(b), 1e-12)


def diagnose(row: dict, previous: list[dict], output: str) -> list[str]:
    """Warnings (one line each) for the epoch ``row``; ``previous`` holds the earlier rows,
    ``output`` names the output layer."""
    out = []
    epoch = row.get("epoch", len(previous) + 1)
    rates = row.get("firing_rates") or {}
    if output in rates and rates[output] < DEAD_RATE:
        first = next(name for name, r in rates.items() if r < DEAD_RATE)
        where = ("" if first == output else
                 f"; activity dies at layer '{first}' ({rates[first]:.2g} spikes per neuron per step)")
        acc = row.get("test_acc")
        out.append(f"epoch {epoch}: the output layer '{output}' fires {rates[output]:.2g} spikes per neuron "
                   f"per step on the test set (silent){where}, so its test accuracy"
                   f"{'' if acc is None else f' {100 * acc:.2f} %'} means nothing: raise the first "
                   "silent layer's weight_scale, lower its threshold or check the input's scale")
    spread = row.get("train_loss_range")
    if spread and _same(spread[0], spread[1]):
        out.append(f"epoch {epoch}: the training loss did not move (every step {spread[1]:.4f} per sample): "
                   "no gradient reaches the weights, typically because the output is silent")
    elif previous and "train_loss" in row and "train_loss" in previous[-1] \
            and _same(row["train_loss"], previous[-1]["train_loss"]):
        out.append(f"epoch {epoch}: the training loss {row['train_loss']:.4f} is the previous epoch's: "
                   "the network is not learning")
    return out


__all__ = ["DEAD_RATE", "FLAT_LOSS", "TrainingHealthWarning", "diagnose"]
