"""`shopkeeper`: run the agent, check its configuration, inspect what it holds and released."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from agent import __version__
from agent.errors import AgentError, ConfigError, ConfigProblems

if TYPE_CHECKING:
    from agent.config import AgentConfig

EXIT_CONFIG = 2


def _load(path: str) -> AgentConfig:
    from agent.config import load_config

    return load_config(path)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Every problem of the file, one line each (file, key, fix), then exit 2; or one ok line."""
    from pathlib import Path

    from agent.config import load_config
    from agent.config.secrets import ENV_FILE_NAME, unset_env_secrets
    from agent.privacy.plan import plan_warnings

    path = Path(args.config)
    problems: list[str] = []
    config = None
    try:
        config = load_config(path)
    except ConfigProblems as exc:
        problems.extend(str(error) for error in exc.errors)
    sample = resources.files("agent").joinpath("sample-agent.toml").read_text(encoding="utf-8")
    try:
        unedited = path.read_text(encoding="utf-8") == sample
    except OSError:
        unedited = False  # load_config said why
    if unedited:
        problems.append(f"{args.config}: is still the unedited sample; fix: set agent.coop, agent.store, agent.doors"
                        " and the [drivers] of this shop")  # fmt: skip
    env_file = path.parent / ENV_FILE_NAME
    for key, variable in unset_env_secrets(path):
        problems.append(
            f"{args.config}: {key}: env:{variable} is not set; fix: add {variable}=... to {env_file} (the unit's"
            " EnvironmentFile) or set it in the environment"
        )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or config is None:
        if len(problems) > 1:
            print(f"{args.config}: {len(problems)} problems", file=sys.stderr)
        return EXIT_CONFIG
    for warning in plan_warnings(config.streams):
        print(f"warning: {args.config}: privacy: {warning}", file=sys.stderr)
    page = config.owner_page
    if page is not None and page.lan and not page.password_hash:
        print(
            f"warning: {args.config}: owner_page.listen: {page.host} reaches the shop's network, but no password_hash"
            " is set, so the page answers this box only; run `shopkeeper owner-password` and add its line",
            file=sys.stderr,
        )
    print(
        f"{args.config}: ok (coop {config.coop}, store {config.store}, doors {', '.join(config.doors)}, "
        f"{len(config.drivers)} driver(s), window {config.window_s}s)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from agent.ops.runtime import Agent
    from agent.privacy.plan import plan_warnings

    for warning in plan_warnings(config.streams):
        logging.getLogger("agent.privacy").warning("%s", warning)
    from pathlib import Path

    from agent.config.secrets import unset_env_secrets

    for key, variable in unset_env_secrets(Path(args.config)):
        logging.getLogger("agent.config").error(
            "%s: %s: env:%s is not set, so this secret is empty (every request that needs it is refused)",
            args.config,
            key,
            variable,
        )

    Agent(config).run_forever()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from agent.ops.status import collect_status, format_status

    report = collect_status(_load(args.config))
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_status(report))
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from agent.ops.status import format_ledger, ledger_rows, round_sentences, verify_ledger, watermark_summary

    config = _load(args.config)
    if args.action == "verify":
        problems = verify_ledger(config)
        for problem in problems:
            print(problem)
        print(watermark_summary(config))
        print(
            "ledger chain intact; database, release journal and coop watermark agree"
            if not problems
            else f"{len(problems)} problem(s) in the ledger, or between it, the release journal and the coop watermark"
        )
        return 0 if not problems else 1
    rows = ledger_rows(config)
    rounds = round_sentences(config)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_ledger(rows))
        if rounds:
            print("\nsecure district totals (newest first):")
            print("\n".join(f"  {line}" for line in rounds))
    return 0


def cmd_coop_identity(args: argparse.Namespace) -> int:
    from agent.coop import identity  # needs the coop extra (cryptography)

    config = _load(args.config)
    path = config.secagg.identity_key if config.secagg is not None else config.data_dir / "secagg-identity.key"
    key = identity.load_or_create(path)
    print(f"{config.store} {identity.public_text(key)}")
    print(f"(give this line to the coop to enrol; the private key stays in {path})")
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from agent.forecast.cli import forecast

    return forecast(_load(args.config), refresh=args.refresh, as_json=args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(args.dir, factor=args.factor, hours=args.hours, seed=args.seed)


def cmd_sample_config(_args: argparse.Namespace) -> int:
    print(resources.files("agent").joinpath("sample-agent.toml").read_text(encoding="utf-8"), end="")
    return 0


def cmd_drivers(args: argparse.Namespace) -> int:
    from agent.driver_cli import list_drivers, sample_for

    print(sample_for(args.kind) if args.kind else list_drivers(), end="")
    return 0


def cmd_owner_password(args: argparse.Namespace) -> int:
    from agent.owner.password_cli import owner_password

    return owner_password(from_stdin=args.stdin)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopkeeper", description=__doc__)
    parser.add_argument("--version", action="version", version=f"shopkeeper {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the agent"),
        ("check-config", cmd_check_config, "validate a configuration file"),
        ("status", cmd_status, "what is buffered, what was released, when"),
        ("coop-identity", cmd_coop_identity, "create (once) and print this shop's key to enrol for secure aggregation"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("config", help="the agent's TOML file")
        if name == "status":
            cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(func=func)
    ledger = sub.add_parser("ledger", help="show what left the shop, or verify the ledger's hash chain")
    ledger.add_argument("action", nargs="?", choices=("show", "verify"), default="show")
    ledger.add_argument("config")
    ledger.add_argument("--json", action="store_true")
    ledger.set_defaults(func=cmd_ledger)
    fc = sub.add_parser("forecast", help="this shop's own forecast for the next 7 days (footfall, sales)")
    fc.add_argument("config")
    fc.add_argument("--json", action="store_true")
    fc.add_argument("--refresh", action="store_true", help="fit now (in its own process) before showing it")
    fc.set_defaults(func=cmd_forecast)
    demo = sub.add_parser("demo", help="a simulated shop day against a local Mosquitto")
    demo.add_argument("--dir", default="demo-run", help="where the demo writes its files")
    demo.add_argument("--factor", type=float, default=1440.0, help="clock acceleration (1440: a day a minute)")
    demo.add_argument("--hours", type=int, default=24)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=cmd_demo)
    owner = sub.add_parser(
        "owner-password", help="make the password hash that opens the owner page to the shop's network"
    )
    owner.add_argument("--stdin", action="store_true", help="read the password from standard input (for scripts)")
    owner.set_defaults(func=cmd_owner_password)
    from agent.licensing.cli import add_parser as add_queries_parser

    add_queries_parser(sub)
    sample = sub.add_parser("sample-config", help="print the commented sample configuration")
    sample.set_defaults(func=cmd_sample_config)
    sub.add_parser("hub", help="the cooperative hub (see docs/hub.md)", add_help=False)
    drivers = sub.add_parser("drivers", help="list installed drivers, or print one driver's sample config")
    drivers.add_argument("kind", nargs="?")
    drivers.set_defaults(func=cmd_drivers)
    sim = sub.add_parser("sim", help="serve a simulated device on a pseudo-terminal", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        from firmware_sim.cli import main as sim_main

        return sim_main(argv[1:])
    if argv and argv[0] == "hub":
        from hub.cli import main as hub_main  # a separate program that shares only the payload contract

        return hub_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigProblems as exc:  # every problem of the file, one line each
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
