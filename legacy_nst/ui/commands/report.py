"""`run_transfer.py report DIR`: DIR/index.html, one static page (no server, no scripts) of every run,
figure and comparison found under DIR."""
from ...tools import report


def build_parser(p):
    p.add_argument("directory", metavar="DIR", help="a directory of runs, figures and comparisons")
    p.add_argument("--depth", type=int, default=report.MAX_DEPTH, help="how deep to look (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a DIR/index.html that report did not write")


def main(args):
    report.write_report(args.directory, max_depth=args.depth, overwrite=args.overwrite)  # it says what it wrote
    return 0
