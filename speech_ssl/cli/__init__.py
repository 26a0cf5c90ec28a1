"""``speech-ssl`` command line: one module per subcommand, each a thin call into the library.

Each module in ``COMMANDS`` defines ``add_parser(subparsers)`` which registers its subparser and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Modules import their
heavy dependencies inside ``run`` so that ``speech-ssl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# Subcommands that compute with torch: they pick a thread count first (speech_ssl.cli.threads).
TORCH_COMMANDS = {"convert", "embed", "init", "pretrain", "finetune", "decode", "demo"}

# Subcommand modules, in the order they appear in --help.
COMMANDS = [
    "presets",
    "convert",
    "embed",
    "prepare",
    "manifest",
    "init",
    "plan",
    "pretrain",
    "finetune",
    "decode",
    "lm",
    "score",
    "results",
    "demo",
]


def _version() -> str:
    """``speech-ssl X (torch Y, Python Z)`` without importing torch (``--help`` stays fast)."""
    from importlib import metadata

    from speech_ssl import __version__

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"speech-ssl {__version__} (torch {torch_version}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speech-ssl",
        description="Self-supervised speech: prepare corpora, pretrain, fine-tune, decode, score.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch threads (default: SPEECH_SSL_THREADS or OMP_NUM_THREADS when set, else the free cores: "
        "usable cores minus the 1-minute load, at least 1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"speech_ssl.cli.{name}").add_parser(sub)
    _plain_help(parser)
    return parser


def plain(text: str | None) -> str | None:
    """Help text without reStructuredText markup: ``code`` -> code, :func:`x` -> x."""
    if not text:
        return text
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Strip markup from every description, epilog and argument help of ``parser`` and its subcommands (the
    modules' docstrings double as help and are written for the API docs)."""
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    for action in parser._actions:
        action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _plain_help(sub)
            for choice in action._choices_actions:
                choice.help = plain(choice.help)


def setup_logging() -> None:
    """The library's notes (rows skipped, heads initialised, lexicon words dropped) on stderr, one line each."""
    import logging

    log = logging.getLogger("speech_ssl")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = build_parser()
    from speech_ssl.cli.decode import join_number_lists

    args, extra = parser.parse_known_args(join_number_lists(list(sys.argv[1:] if argv is None else argv)))
    if extra:  # dotted overrides may also follow the options (CONFIG --run-dir D k=v); anything else is an error
        if isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from speech_ssl.config import ConfigError
    from speech_ssl.errors import DataError

    if args.command in TORCH_COMMANDS:
        from speech_ssl.cli.threads import apply_thread_policy

        try:
            apply_thread_policy(args.threads)
        except ValueError as e:  # a bad --threads / SPEECH_SSL_THREADS / OMP_NUM_THREADS
            print(f"speech-ssl: {e}", file=sys.stderr)
            return 2
    try:
        rc = args.func(args)
    except ConfigError as e:
        print(f"speech-ssl {args.command}: config error: {e}", file=sys.stderr)
        return 2
    except DataError as e:  # a command that does not report bad input itself: the message, not a traceback
        print(f"speech-ssl {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
