"""What every absl console command of this project shares: private flags, one-line errors.

Each command defines its flags on its own ``FlagValues`` (importing two commands' modules then never
collides on flag names in absl's global ``FLAGS``, which keeps only absl's own ``--verbosity`` etc.), and
turns its usage/environment error type into ``PROG: error: ...`` on stderr with exit status 1.
"""

from __future__ import annotations

import sys

from absl import app, flags


def parse_flags(argv, define_flags) -> flags.FlagValues:
    """Parses ``argv`` (argv[0] is the program) into a fresh FlagValues filled by ``define_flags(fv)``;
    absl's own flags (``--verbosity``, ``--logtostderr``...) go to the global FLAGS."""
    rest = flags.FLAGS(list(argv), known_only=True)
    fv = flags.FlagValues()
    define_flags(fv)
    try:
        fv(rest)
    except flags.Error as err:
        raise app.UsageError(str(err)) from err
    return fv


def run_reporting(prog: str, fn, fv, errors) -> None:
    """``fn(fv)``; an exception of the ``errors`` types becomes one line on stderr and exit status 1."""
    try:
        fn(fv)
    except errors as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)


def table_command(out: str, report_only: bool, argv=None) -> str:
    """The command line a results table records: this one (kept in ``out/command.txt``) when training,
    or, with ``report_only``, the training command recorded earlier (this one if none was)."""
    import os  # noqa: PLC0415

    command = " ".join(["python"] + list(sys.argv if argv is None else argv))
    record = os.path.join(out, "command.txt")
    os.makedirs(out, exist_ok=True)
    if not report_only:
        with open(record, "w", encoding="utf-8") as f:
            f.write(command + "\n")
    elif os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            command = f.read().strip()
    return command
