"""Running the CLI in this process, for the tests that check exit codes and messages."""
from legacy_nst import cli


def run_main(argv, capsys):
    """cli.main in-process: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
