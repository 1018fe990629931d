"""``tsslc report RUN``: write RUN/report.html, one self-contained page (images embedded)
from what the run folder holds: training metrics (metrics.json), the later stages'
measurements (report.json, written by ``tsslc demo``) and figures (figures/*.png).
Also prints the energy table when the run has one (energy.json)."""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run folder (e.g. runs/demo)")
    parser.add_argument("-o", "--out", default=None, help="HTML file to write (default RUN/report.html)")


def run(args) -> int:
    from tsslc.report.energy import format_table
    from tsslc.report.html import write_report

    path = write_report(args.run, args.out)
    energy = Path(args.run) / "energy.json"
    if energy.is_file():
        try:
            print(format_table(json.loads(energy.read_text())))
        except (json.JSONDecodeError, KeyError):
            print(f"(energy table skipped: {energy} is not a tsslc energy report)")
    print(f"wrote {path}")
    return 0
