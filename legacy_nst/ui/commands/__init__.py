"""The subcommands of `run_transfer.py` beside the default run: each module has `build_parser(parser)`
(it adds its arguments to the argparse parser it is given) and `main(args) -> exit code`; the errors they
raise are turned into messages and exit codes by legacy_nst.ui.cli, like the run's."""
import importlib

COMMANDS = {
    "figure": "run one figure of Gatys, Ecker & Bethge (CVPR 2016) cell by cell and assemble its labelled sheet",
    "batch": "run every job of a jobs file (sweeps of any field), here or on a Ray cluster, with a summary",
    "compare": "score an image against its content, style and a reference (SSIM, feature and Gram distances)",
    "report": "one static HTML page of the runs, figures and comparisons in a directory",
}


def module(name):
    return importlib.import_module(f"{__name__}.{name}")
