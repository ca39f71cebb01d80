"""`shopkeeper hub`: run the cooperative hub, or check its configuration."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib import resources
from typing import Any

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
    user = sub.add_parser("add-user", help="create a dashboard account (or reset its password); reads the password")
    user.add_argument("name", help="account name (lowercase letters, digits, - or _)")
    user.add_argument("--config", required=True, help="the hub's TOML file (for its database)")
    user.add_argument(
        "--role",
        choices=("admin", "shop"),
        required=True,
        help="admin sees every shop; shop sees its own shop and the district figures",
    )
    user.add_argument("--store", help="the shop of a shop account (its name in the topics)")
    user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    plan = sub.add_parser(
        "secagg-plan", help="queue a secure-aggregation round for the running hub (docs/secure-aggregation.md)"
    )
    plan.add_argument("config", help="the hub's TOML file (with a [secagg] section)")
    plan.add_argument("--round-id", required=True, help="a new name for the round, e.g. footfall-2026-11-16")
    plan.add_argument("--stream", default="footfall_store", help="the stream summed (default footfall_store)")
    plan.add_argument("--key", default="all", help="the stream's key (default all)")
    plan.add_argument("--fields", default="entries", help="comma-separated value fields (default entries)")
    plan.add_argument("--start", required=True, help="the first window's start, e.g. 2026-11-16T00:00:00Z")
    plan.add_argument("--window-s", type=int, default=3600, help="the shops' window length in seconds")
    plan.add_argument("--windows", type=int, default=24, help="how many consecutive windows (default 24)")
    plan.add_argument("--threshold", type=int, required=True, help="fewest shops whose sum may be unmasked")
    plan.add_argument("--rho", required=True, help='zCDP rho of the district sum per window, e.g. "1/48"')
    plan.add_argument("--sensitivity", type=int, default=1, help="L2 sensitivity of one shop's vector (default 1)")
    plan.add_argument("--value-bound", type=int, default=100_000, help="each shop's cell is clamped to this")
    plan.add_argument("--colluders", type=int, default=0, help="shops assumed to collude with the hub")
    from hub.licensing_cli import add_parser as add_licensing_parser

    add_licensing_parser(sub)
    load = sub.add_parser("loadgen", help="publish synthetic shop days to a broker (from a checkout: devtools/)")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, default=1883)
    load.add_argument("--coop", default="riverside")
    load.add_argument("--shops", type=int, default=10, help="synthetic shops (default 10)")
    load.add_argument("--days", type=int, default=1, help="days of hourly windows per shop (default 1)")
    load.add_argument("--rate", type=float, default=0.0, help="messages per second, 0 = as fast as acknowledged")
    load.add_argument("--categories", default="", help="comma-separated categories for t2 sales (default none)")
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise HubError("the two passwords differ")
    return first


def _add_user(args: argparse.Namespace) -> int:
    from hub.auth import AuthError, add_user
    from hub.config import load_hub_config
    from hub.db import Database

    config = load_hub_config(args.config)
    database = Database(config.database)
    database.migrate()
    password = _read_password(args.password_stdin)
    conn = database.connect()
    try:
        add_user(conn, args.name, args.role, args.store, password)
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        conn.close()
    where = "every shop" if args.role == "admin" else f"shop {args.store} and the district figures"
    print(f"account {args.name} ({args.role}) saved in {database.kind}: it sees {where}")
    return 0


def _loadgen(args: argparse.Namespace) -> int:
    try:
        from devtools import loadgen
    except ImportError:
        print(
            "error: the load generator lives in devtools/, which is not installed with the package; from a checkout"
            " run: python -m devtools.loadgen --shops N --days D --rate R (or `shopkeeper hub loadgen` there)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    argv = [
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--coop",
        args.coop,
        "--shops",
        str(args.shops),
        "--days",
        str(args.days),
        "--rate",
        str(args.rate),
    ]
    if args.categories:
        argv += ["--categories", args.categories]
    return int(loadgen.main(argv))


def _secagg_plan(args: argparse.Namespace, config: Any) -> int:
    """Queue one round; the running hub's coordinator picks it up (one round at a time, oldest first)."""
    from fractions import Fraction

    from agent.contract import parse_iso
    from hub import secagg_store
    from hub.db import Database

    if config.secagg is None:
        print(f"error: {args.config} has no [secagg] section (the roster of enrolled shops)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        rho = Fraction(args.rho)
        start_s = parse_iso(args.start)
    except (ValueError, ZeroDivisionError) as exc:
        print(f"error: --rho or --start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    fields = tuple(f for f in args.fields.split(",") if f)
    cells = secagg_store.window_cells(args.stream, args.key, fields, start_s, args.window_s, args.windows)
    planned = secagg_store.PlannedRound(
        args.round_id, args.stream, cells, args.threshold, args.value_bound, args.sensitivity, rho,
        args.colluders, 0,
    )  # fmt: skip
    conn = Database(config.database).connect()
    try:
        with conn.transaction():
            secagg_store.plan_round(conn, planned)
    finally:
        conn.close()
    print(f"round {args.round_id} queued: {len(cells)} cells of {args.stream} from {args.start}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for a configuration error)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "sample-config":
        print(resources.files("hub").joinpath("sample-hub.toml").read_text(encoding="utf-8"), end="")
        return 0
    if args.command == "loadgen":
        return _loadgen(args)
    missing = missing_hub_modules()
    if missing:
        print(
            f"error: shopkeeper hub needs the hub extra (missing {', '.join(missing)}): {HUB_EXTRA_HINT}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from hub.config import load_hub_config

    try:
        if args.command == "add-user":
            return _add_user(args)
        if args.command == "licensing":
            from hub.licensing_cli import run as run_licensing

            return run_licensing(args)
        config = load_hub_config(args.config)
        if args.command == "secagg-plan":
            return _secagg_plan(args, config)
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
