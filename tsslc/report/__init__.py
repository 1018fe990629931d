"""The last stage of the pipeline: count what a network did, price it, draw it, report it.

* :mod:`tsslc.report.counters` — spikes, synaptic operations, neuron updates, hops from the
  spikes of any back end (float interpreter, intsim, Lava);
* :mod:`tsslc.report.neurobench` — the same counts in NeuroBench's conventions;
* :mod:`tsslc.report.energy` — counts priced with each target's labelled energy table;
* :mod:`tsslc.report.figures` — matplotlib (Agg) PNG figures;
* :mod:`tsslc.report.html` — one self-contained HTML page.
"""
