"""The ``tlcourse`` command: ``doctor``, ``exercises build|check``, ``grade``."""
from __future__ import annotations

import argparse
import sys


def _doctor(args) -> int:
    from .doctor import run_doctor

    return 0 if run_doctor() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlcourse", description="Tools of the transfer-learning course.")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check that the course is ready to run offline")
    doctor.set_defaults(func=_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
