"""``tsslc nir export MODEL -o X.nir [--for CONSUMER]`` and ``tsslc nir import X.nir -o MODEL``.

Export writes each LIF with its synapse as a NIR CubaLIF with an explicit ``dt`` and records
dt and the discretisation in the graph's metadata. ``--for`` picks the variant a framework's
importer loads as written (generic, snntorch, norse, rockpool with ``--approximate``; sinabs
is refused with the reason). Import needs the time step of the tool that wrote the file:
``--dt SECONDS`` or ``--convention`` (how each was derived: :data:`tsslc.ir.nir_io.CONVENTIONS`);
without either, the dt recorded in the file's metadata is used. See :mod:`tsslc.ir.nir_io`.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from tsslc.cli import HelpFormatter
    from tsslc.ir.nir_io import CONSUMERS, CONVENTIONS

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exp = sub.add_parser("export", help="tsslc model file -> NIR file", formatter_class=HelpFormatter)
    exp.add_argument("model", help="float tsslc model file")
    exp.add_argument("-o", "--out", "--output", dest="output", required=True, help="NIR file to write (e.g. model.nir)")
    exp.add_argument("--for", dest="consumer", choices=list(CONSUMERS), default="generic",
                     help="the framework that will import the file (default generic)")
    exp.add_argument("--dt", type=float, default=None,
                     help="seconds per time step (default: what the consumer's importer assumes; generic 1e-3)")
    exp.add_argument("--approximate", action="store_true",
                     help="write the file even where the consumer's neuron spikes differently (rockpool)")
    imp = sub.add_parser("import", help="NIR file -> tsslc model file", formatter_class=HelpFormatter)
    imp.add_argument("nir_file", help="NIR file (HDF5, nir 1.0)")
    imp.add_argument("-o", "--out", "--output", dest="output", required=True, help="tsslc model file to write")
    how = imp.add_mutually_exclusive_group()
    how.add_argument("--dt", type=float, default=None, help="seconds per time step the graph was made for")
    how.add_argument("--convention", choices=list(CONVENTIONS), default=None,
                     help="time-constant convention of the framework that wrote the file")
    imp.add_argument("--encoding", choices=("current", "events"), default=None,
                     help="input encoding (default: recorded in the file, else current)")
    imp.add_argument("--n-steps", type=int, default=None, help="time steps per sample to record in the model")


def run(args) -> int:
    from tsslc.atomic import refuse_clobber
    from tsslc.ir import io, nir_io

    source = args.model if args.action == "export" else args.nir_file
    refuse_clobber([("-o", args.output)], [("model" if args.action == "export" else "NIR file", source)])
    if args.action == "export":
        graph = io.load(args.model)
        ng = nir_io.to_nir(graph, dt=args.dt, consumer=args.consumer, approximate=args.approximate)
        path = nir_io.write_graph(ng, args.output)
        dt = float(ng.metadata["dt"])
        print(f"{path}: NIR graph of {args.model} for {args.consumer}, dt = {dt:g} s per step")
        if "approximate" in ng.metadata:
            print(f"approximate: {ng.metadata['approximate']}")
        return 0
    graph = nir_io.read(args.nir_file, dt=args.dt, convention=args.convention, encoding=args.encoding,
                        n_steps=args.n_steps)
    io.save(graph, args.output)
    print(f"{args.output}: {len(graph)} nodes imported from {args.nir_file}")
    return 0
