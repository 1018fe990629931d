"""tsslc compile / run / verify end to end on the trained digits model (real files)."""

from __future__ import annotations

import json

from tsslc.cli import main
from tsslc.ir.io import load, save


def test_compile_run_verify_cli(digits_graph, tmp_path, capsys):
    model = save(digits_graph, tmp_path / "digits.tsslc")
    out = tmp_path / "digits_loihi2.tsslc"
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(out), "--calibration", "128"]) == 0
    text = capsys.readouterr().out
    assert "hidden" in text and "mapping:" in text and out.is_file()
    cg = load(out)
    assert cg.metadata["target"] == "loihi2" and cg.metadata["quantization"]["calibration_samples"] == 128
    assert main(["run", str(out), "--samples", "50", "--json", str(tmp_path / "run.json"), "--no-progress"]) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["samples"] == 50 and run["accuracy"] > 0.85 and run["counters"]["layers"]["output"]["spikes"] > 0
    vj = tmp_path / "verify.json"
    assert main(["verify", str(model), "--target", "loihi2", "--samples", "60", "--calibration", "128",
                 "--json", str(vj), "--no-progress"]) == 0
    v = json.loads(vj.read_text())
    c = v["comparisons"][0]
    assert (c["reference"], c["backend"]) == ("float", "intsim")
    assert set(c["layers"]) == {"hidden", "output"} and c["spike_agreement"] > 0.98
    assert v["backends"]["float"]["accuracy"] == c["accuracy_reference"]
    # the deployment form: the compiled file against the float model it came from
    vj2 = tmp_path / "verify2.json"
    assert main(["verify", str(out), "--against", str(model), "--samples", "60", "--json", str(vj2),
                 "--no-progress"]) == 0
    v2 = json.loads(vj2.read_text())
    assert v2["comparisons"][0]["backend"] == "intsim" and v2["samples"] == 60
    assert v2["quantization"] == cg.metadata["quantization"]
    # run takes the float model too (float back end)
    assert main(["run", str(model), "--samples", "50", "--json", str(tmp_path / "float.json"), "--no-progress"]) == 0
    fl = json.loads((tmp_path / "float.json").read_text())
    assert fl["backend"] == "float" and fl["target"] is None and fl["accuracy"] > 0.85
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_cli_errors(digits_graph, tmp_path, capsys):
    model = save(digits_graph, tmp_path / "digits.tsslc")
    assert main(["compile", str(model), "--target", "spinnaker", "-o", str(tmp_path / "x.tsslc")]) == 1
    err = capsys.readouterr().err
    assert "unknown target 'spinnaker'" in err and "loihi2" in err and "Traceback" not in err
    assert not (tmp_path / "x.tsslc").exists()
    assert main(["run", str(model), "--backend", "intsim"]) == 1
    assert "runs compiled graphs" in capsys.readouterr().err
    assert main(["verify", str(model)]) == 1
    assert "give --target" in capsys.readouterr().err
    assert main(["verify", str(model), "--target", "loihi2", "--backends", "float,tpu"]) == 1
    assert "unknown back end 'tpu'" in capsys.readouterr().err
