"""Command-line interface: parses arguments and calls the library; errors print as one line.

One module a group of commands (training, generation, models, measuring), their shared flags in ``common``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from gankit.cli.generation import add_sample, add_verify
from gankit.cli.measuring import add_bench, add_demo, add_eval
from gankit.cli.models import add_export, add_import, add_info, add_validate
from gankit.cli.training import add_train
from gankit.errors import GankitError

COMMANDS = (
    add_train,
    add_import,
    add_sample,
    add_verify,
    add_info,
    add_export,
    add_validate,
    add_bench,
    add_eval,
    add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit", description="Train, export, sample and benchmark an MLP GAN generator."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _os_error(exc: OSError) -> str:
    """One line for a failure of the outside world: what failed, on which file."""
    where = " ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return f"{exc.strerror or exc}{f': {where}' if where else ''}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at exit: a reader gone early (| head) is a broken pipe this handler sees
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError):  # stdout is gone: the interpreter's last flush must not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"gankit {args.command}: error: the output was closed before it was all written", file=sys.stderr)
        return 2
    except (GankitError, OSError, MemoryError) as exc:
        if args.debug:
            raise
        if isinstance(exc, MemoryError):
            message = "out of memory; lower --n, --batch-size or --shard-size"
        else:
            message = _os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"gankit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gankit {args.command}: interrupted", file=sys.stderr)
        return 130
