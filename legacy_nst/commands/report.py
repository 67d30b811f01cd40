"""`run_transfer.py report DIR`: DIR/index.html, one static page (no server, no scripts) of every run,
figure and comparison found under DIR."""
from .. import report


def build_parser(p):
    p.add_argument("directory", metavar="DIR", help="a directory of runs, figures and comparisons")
    p.add_argument("--depth", type=int, default=report.MAX_DEPTH, help="how deep to look (default %(default)s)")


def main(args):
    report.write_report(args.directory, max_depth=args.depth)  # it says what it wrote
    return 0
