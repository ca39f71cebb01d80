"""`shopkeeper hub`: run the cooperative hub, or check its configuration."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib import resources

from hub import __version__
from hub.errors import HubConfigError, HubError

EXIT_CONFIG = 2
# What the `hub` extra adds, by import name: a shop's box installs the agent without them, so the hub
# checks for them before it starts rather than failing with a traceback halfway through.
HUB_EXTRA_MODULES = ("jsonschema", "psycopg")
HUB_EXTRA_HINT = "pip install 'shopkeeper[hub]'"


def missing_hub_modules() -> list[str]:
    """The hub extra's modules that cannot be imported here (psycopg also fails when it finds no libpq)."""
    missing = []
    for name in HUB_EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopkeeper hub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"shopkeeper hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a hub worker")
    run.add_argument("config", help="the hub's TOML file")
    check = sub.add_parser("check-config", help="validate a hub configuration file")
    check.add_argument("config")
    sub.add_parser("sample-config", help="print the commented sample configuration")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for a configuration error)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "sample-config":
        print(resources.files("hub").joinpath("sample-hub.toml").read_text(encoding="utf-8"), end="")
        return 0
    missing = missing_hub_modules()
    if missing:
        print(
            f"error: shopkeeper hub needs the hub extra (missing {', '.join(missing)}): {HUB_EXTRA_HINT}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from hub.config import load_hub_config

    try:
        config = load_hub_config(args.config)
        if args.command == "check-config":
            print(
                f"{args.config}: ok (coop {config.coop}, database {'postgresql' if config.is_postgres else 'sqlite'},"
                f" subscribing to {config.topic_filter})"
            )
            return 0
        logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from hub.runtime import Hub

        return Hub(config).run_forever()
    except HubConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
