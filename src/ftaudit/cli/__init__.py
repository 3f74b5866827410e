"""The `ftaudit` command: parses, calls one function, prints.

Each area registers its subcommands from its own module (`ftaudit.cli.<area>`). Those modules import only
argparse-level things at the top; heavy imports (torch, transformers) happen inside the handlers so that
`ftaudit estimate` answers in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from ftaudit import __version__
from ftaudit.errors import BAD_INPUT, EXIT_CODES, INTERRUPTED, FtauditError

# Modules that define `register(subparsers)`; one per area.
COMMAND_MODULES = ["estimate", "status", "record", "data", "train", "evaluate", "docs", "ledger", "monitor",
                   "dashboard"]


class _Parser(argparse.ArgumentParser):
    """Usage errors are bad input: one line, exit 1 (argparse's default is 2, which we use for runtime errors)."""

    def error(self, message):
        self.exit(BAD_INPUT, f"ftaudit: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:<3}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = _Parser(prog="ftaudit", description="EU AI Act evidence for fine-tuning LLMs.",
                     epilog=f"exit codes:\n{codes}", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ftaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ftaudit.cli.{name}").register(sub)
    return parser


def _quiet_libraries() -> None:
    # The CLI shows its own progress; library progress bars and deprecation notices are noise to its users.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Optional libraries' notices about this machine, not the run: DeepSpeed's "Setting accelerator to CPU" (on
    # stdout, whenever transformers imports it) and bitsandbytes' missing optional CPU kernel (it falls back to torch).
    logging.getLogger("DeepSpeed").addFilter(lambda r: "Setting accelerator to CPU" not in r.getMessage())
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def _parser_of(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of `ftaudit COMMAND` (so `ftaudit ledger` lists the ledger's actions), else the top level."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        _parser_of(parser, args.command).print_help(sys.stderr)
        return BAD_INPUT
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # `ftaudit estimate ... | head`: the reader closed the pipe; stop quietly (stdout to devnull so the
        # interpreter's final flush does not raise again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FtauditError as exc:
        print(f"ftaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ftaudit: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
