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
    parser.add_argument("--version", action="version", version=f"tsslc {__import__('tsslc').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
        print(f"tsslc {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tsslc {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
