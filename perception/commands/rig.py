"""``bevfuse rig check FILE``: validate a rig file, one line per problem."""

from __future__ import annotations

import argparse
import sys

NAME = "rig"
HELP = "rig file tools: check a rig file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rig_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser("check", help="validate a rig file; exit 1 with one line per problem")
    check.add_argument("file", help="rig YAML file")


def run(args: argparse.Namespace) -> int:
    from calib.rig import check_rig_file, load_rig

    problems = check_rig_file(args.file)
    if problems:
        for line in problems:
            for part in line.splitlines():
                print(part, file=sys.stderr)
        return 1
    rig = load_rig(args.file)
    print(f"{args.file}: ok: {len(rig.sensors)} sensors ({', '.join(rig.names)})")
    return 0
