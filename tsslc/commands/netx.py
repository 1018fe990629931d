"""``tsslc netx export COMPILED -o X.net``: a loihi2-compiled model as lava-dl netx's HDF5
network file (:func:`tsslc.backends.netx.export`), and beside it ``X.net.json`` with what
the file cannot carry (``netx.hdf5.Network``'s input_message_bits, reset_interval and
reset_offset, the input's encoding and layout, the timing), which is also printed.
Compile with ``--variant netx`` so that netx runs the file exactly as intsim.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from tsslc.cli import HelpFormatter

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exp = sub.add_parser("export", help="compiled tsslc model (loihi2) -> lava-dl netx .net file + .net.json",
                         formatter_class=HelpFormatter)
    exp.add_argument("model", help="model file compiled for loihi2 (tsslc compile --target loihi2 --variant netx)")
    exp.add_argument("-o", "--out", "--output", dest="output", required=True,
                     help="netx file to write (e.g. model.net); its arguments go to OUTPUT.json")
    exp.add_argument("--n-steps", type=int, default=None,
                     help="steps per sample, the reset interval (default: the model's n_steps)")


def run(args) -> int:
    import json

    import tsslc
    from tsslc.backends.netx import export
    from tsslc.errors import TsslcError

    from tsslc.atomic import refuse_clobber

    refuse_clobber([("-o", args.output), ("its arguments file", args.output + ".json")],
                   [("compiled model", args.model)])
    if args.n_steps is not None and args.n_steps < 1:
        raise TsslcError(f"--n-steps must be >= 1, got {args.n_steps}")
    graph = tsslc.load(args.model)
    done = export(graph, args.output, n_steps=args.n_steps, source=args.model)
    for line in done.lines():
        print(line)
    print("netx.hdf5.Network arguments: " + json.dumps(done.arguments))
    return 0
