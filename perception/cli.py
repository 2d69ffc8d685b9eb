"""The ``bevfuse`` command: one sub-command per module in ``perception.commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
modules import their heavy dependencies (torch, open3d) inside ``run`` so that ``bevfuse info``
starts in well under a second. A ``BevfuseError`` ends the command with one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from perception import __version__
from perception.errors import BevfuseError

__all__ = ["main"]

# The sub-commands, in the order `bevfuse --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "perception.commands.info",
    "perception.commands.rig",
    "perception.commands.eval",
    "perception.commands.train",
    "perception.commands.export",
    "perception.commands.sim",
    "perception.commands.replay",
    "perception.commands.play",
    "perception.commands.node",
    "perception.commands.bench",
)


def _load_commands() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bevfuse", description="Real-time camera + LiDAR + radar BEV fusion toolkit.")
    parser.add_argument("--version", action="version", version=f"bevfuse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _load_commands():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BevfuseError as exc:
        print(f"bevfuse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bevfuse {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
