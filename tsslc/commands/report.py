"""``tsslc report RUN``: write RUN/report.html, one self-contained page (images embedded)
from what the run folder holds: training metrics (metrics.json), the later stages'
measurements (report.json, written by ``tsslc demo``) and figures (figures/*.png).
Also prints the energy table when the run has one (energy.json).

``tsslc report --compare RUN_A RUN_B [-o OUT.html]``: the two runs side by side (summary of
both with the differences highlighted, metadata, accuracy vs energy)."""

from __future__ import annotations

import json
from pathlib import Path

from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("run", nargs="?", default=None, help="run folder (e.g. runs/demo)")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), default=None,
                        help="render two runs side by side instead (default output: compare_A_vs_B.html here)")
    parser.add_argument("-o", "--out", default=None, help="HTML file to write (default RUN/report.html)")


def run(args) -> int:
    from tsslc.report.energy import format_table

    if args.compare and args.run:
        raise TsslcError(f"give either a run folder or --compare RUN_A RUN_B, not both (got {args.run} too)")
    if args.compare:
        from tsslc.report.compare import write_compare

        print(f"wrote {_rendered(write_compare, args.compare, *args.compare, args.out)}")
        return 0
    if not args.run:
        raise TsslcError("tsslc report needs a run folder (tsslc report RUN) or --compare RUN_A RUN_B")
    from tsslc.report.html import write_report

    path = _rendered(write_report, [args.run], args.run, args.out)
    energy = Path(args.run) / "energy.json"
    if energy.is_file():
        try:
            print(format_table(json.loads(energy.read_text())))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            print(f"(energy table skipped: {energy} is not a tsslc energy report)")
    print(f"wrote {path}")
    return 0


def _rendered(fn, runs, *args):
    """``fn(*args)``; a value of the wrong kind deep in a run's JSON (what the checks of
    tsslc.report.record do not reach) is one line naming the run folders, not a traceback."""
    try:
        return fn(*args)
    except TsslcError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError, ArithmeticError) as e:
        first = str(e).splitlines()[0][:150] if str(e) else ""
        raise TsslcError(f"{', '.join(map(str, runs))}: report.json or metrics.json holds a value tsslc did not write "
                         f"({type(e).__name__}: {first}); re-create it with 'tsslc demo' / 'tsslc train'") from None
