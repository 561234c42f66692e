"""`python -m minfer doctor [--json]`: what this machine has, and for each of minfer's specs
whether it would load prebuilt or be compiled by JIT, and why (see `torchwheel doctor`)."""

from __future__ import annotations

import argparse
import sys

from torchwheel.errors import TorchwheelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minfer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="environment and per-spec prebuilt/JIT verdicts")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    from torchwheel.cli.doctor import run_doctor

    try:
        return run_doctor(["minfer"], as_json=args.json)
    except TorchwheelError as error:
        print(f"minfer: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
