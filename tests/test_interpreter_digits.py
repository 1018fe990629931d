"""The reference interpreter reproduces the trained digits model exactly."""

import torch

from tsslc.ir import interpreter


def test_interpreter_spikes_identical_on_full_test_set(digits_fit, digits_graph, digits_test_arrays):
    x, y = digits_test_arrays
    net = digits_fit.network
    with torch.no_grad():
        psc, out, rec = net(torch.from_numpy(x), record=True)
    res = interpreter.run(digits_graph, x)
    assert set(rec) == set(res.spikes) == {"hidden", "output"}
    for name, s in rec.items():
        assert torch.equal(s, res.spikes[name]), name
    assert torch.equal(psc, res.output_psc)
    acc = (res.predictions().numpy() == y).mean()
    assert acc >= 0.95, acc
