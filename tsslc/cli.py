"""The ``tsslc`` command. Each subcommand lives in its own module under
:mod:`tsslc.commands` with ``add_arguments(parser)`` and ``run(args) -> int``; user
mistakes (:class:`~tsslc.errors.TsslcError`) are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from tsslc.errors import TsslcError

#: name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tsslc.commands.train", "train a network from a YAML config with TSSL-BP (or the BPTT baseline)"),
    "export": ("tsslc.commands.export", "export a training checkpoint to a tsslc model file"),
    "inspect": ("tsslc.commands.inspect", "per-layer table of a model file (and a picture of the graph)"),
    "nir": ("tsslc.commands.nir", "NIR interchange: 'nir export' and 'nir import'"),
    "compile": ("tsslc.commands.compile", "quantize and map a model for a target (loihi2, truenorth)"),
    "finetune": ("tsslc.commands.finetune", "hardware-aware fine-tuning through a target's rounding"),
    "netx": ("tsslc.commands.netx", "lava-dl netx: 'netx export' writes a loihi2-compiled model as a netx .net file"),
    "run": ("tsslc.commands.run", "run a compiled model on a back end (intsim, lava) over a data set"),
    "verify": ("tsslc.commands.verify", "compare float, integer simulator and Lava spikes layer by layer"),
    "report": ("tsslc.commands.report", "write the HTML report of a run, or compare two runs side by side"),
    "demo": ("tsslc.commands.demo", "the main job: train digits, export, compile, run, verify, report"),
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help line (unless the text already states it, or there
    is nothing to state: no default, a flag that is off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsslc",
        description="tsslc: train spiking networks with TSSL-BP, compile them for Loihi 2 (Lava) and "
        "TrueNorth-like cores, verify the back ends layer by layer and report spikes and energy.",
    )
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="refuse a load or run estimated to need more than SIZE bytes, checked before allocating "
                             "(any command, e.g. 64G; default 8G, or $TSSLC_MAX_MEMORY)")
    parser.add_argument("--version", action="version", version=f"tsslc {__import__('tsslc').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def _take_max_memory(argv: list[str]) -> tuple[list[str], str | None]:
    """``--max-memory SIZE`` anywhere on the line (any command): removed, its value returned."""
    rest, size, i = [], None, 0
    while i < len(argv):
        if argv[i] == "--max-memory" and i + 1 < len(argv):
            size, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--max-memory="):
            size = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return rest, size


def main(argv: list[str] | None = None) -> int:
    from tsslc import validate

    argv, size = _take_max_memory(list(sys.argv[1:] if argv is None else argv))
    try:
        validate.set_max_bytes(None if size is None else validate.parse_size(size))
        validate.max_bytes()  # a bad $TSSLC_MAX_MEMORY is reported here, once
    except TsslcError as e:
        print(f"tsslc: error: {e}", file=sys.stderr)
        return 2
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"tsslc {name}", description=help_, formatter_class=HelpFormatter)
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        # past a file-size limit (ulimit -f) a write fails with EFBIG, reported as one error
        # like a full disk, instead of the signal killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        return int(module.run(args) or 0)
    except TsslcError as e:
        one_line = " ".join(part.strip() for part in str(e).splitlines())  # a value's repr may span lines
        print(f"tsslc {name}: error: {one_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tsslc {name}: interrupted", file=sys.stderr)
        return 130
    finally:
        validate.set_max_bytes(None)  # --max-memory is this command's (main may run in-process again)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
