"""Running the `rfsweep` entry point in-process, for CLI tests."""

from rfsweep.cli import main


def run_cli(capsys, *argv):
    """main(argv) in-process: (exit code, stdout, stderr) of this call only."""
    capsys.readouterr()
    try:
        main([str(arg) for arg in argv])
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    return code, out, err
