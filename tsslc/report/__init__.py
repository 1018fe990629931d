"""The last stage of the pipeline: price what a network did, draw it, report it.

The counts themselves come with every back end's result (:mod:`tsslc.backends.counters`,
one implementation for the float interpreter, intsim and Lava).

* :mod:`tsslc.report.neurobench` — the same counts in NeuroBench's conventions;
* :mod:`tsslc.report.energy` — counts priced with each target's labelled energy table;
* :mod:`tsslc.report.figures` — matplotlib (Agg) PNG figures;
* :mod:`tsslc.report.html` — one self-contained HTML page.
"""
