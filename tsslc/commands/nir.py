"""``tsslc nir export MODEL -o X.nir`` and ``tsslc nir import X.nir -o MODEL``.

Export writes each LIF with its synapse as a NIR CubaLIF with an explicit ``dt`` (seconds per
step, default 1e-3) and records dt and the discretisation in the graph's metadata. Import
needs the time step of the tool that wrote the file: ``--dt SECONDS`` or ``--convention``
(tsslc/norse 1e-3, snntorch 1e-4, sinabs/steps 1); without either, the dt recorded in the
file's metadata is used. See :mod:`tsslc.ir.nir_io` for the exact mapping.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from tsslc.ir.nir_io import CONVENTIONS, DEFAULT_DT

    from tsslc.cli import HelpFormatter

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exp = sub.add_parser("export", help="tsslc model file -> NIR file", formatter_class=HelpFormatter)
    exp.add_argument("model", help="float tsslc model file")
    exp.add_argument("-o", "--out", "--output", dest="output", required=True, help="NIR file to write (e.g. model.nir)")
    exp.add_argument("--dt", type=float, default=DEFAULT_DT, help=f"seconds per time step (default {DEFAULT_DT})")
    imp = sub.add_parser("import", help="NIR file -> tsslc model file", formatter_class=HelpFormatter)
    imp.add_argument("nir_file", help="NIR file (HDF5, nir 1.0)")
    imp.add_argument("-o", "--out", "--output", dest="output", required=True, help="tsslc model file to write")
    how = imp.add_mutually_exclusive_group()
    how.add_argument("--dt", type=float, default=None, help="seconds per time step the graph was made for")
    how.add_argument("--convention", choices=sorted(CONVENTIONS), default=None,
                     help="dt convention of the framework that wrote the file")
    imp.add_argument("--encoding", choices=("current", "events"), default=None,
                     help="input encoding (default: recorded in the file, else current)")
    imp.add_argument("--n-steps", type=int, default=None, help="time steps per sample to record in the model")


def run(args) -> int:
    from tsslc.ir import io, nir_io

    if args.action == "export":
        graph = io.load(args.model)
        nir_io.write(graph, args.output, dt=args.dt)
        print(f"{args.output}: NIR graph of {args.model}, dt = {args.dt} s per step")
        return 0
    graph = nir_io.read(args.nir_file, dt=args.dt, convention=args.convention, encoding=args.encoding,
                        n_steps=args.n_steps)
    io.save(graph, args.output)
    print(f"{args.output}: {len(graph)} nodes imported from {args.nir_file}")
    return 0
