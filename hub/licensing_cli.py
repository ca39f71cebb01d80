"""`shopkeeper hub licensing keygen|ask|district|statement`: the coop's side of data licensing."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built before the hub extra is checked: import nothing of it here
    from hub.config import HubConfig

EXIT_USAGE = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    lic = sub.add_parser("licensing", help="data licensing: keys, queries, district answers, statements")
    cmds = lic.add_subparsers(dest="licensing_command", required=True)
    keygen = cmds.add_parser("keygen", help="make the coop's Ed25519 signing key; prints the public key for shops")
    keygen.add_argument("key_file", help="where to write the private key (created owner-only; never overwritten)")
    ask = cmds.add_parser("ask", help="sign a query from the catalogue, record it and publish it to every box")
    ask.add_argument("config", help="the hub's TOML file")
    ask.add_argument("--key", required=True, help="the private key file from `keygen`")
    ask.add_argument("--kind", required=True, help="footfall_hour_of_week, category_shares_by_month, basket_value_bins")
    ask.add_argument("--param", action="append", default=[], help="NAME=VALUE, e.g. start=2026-11-02 (repeat)")
    ask.add_argument("--requester", required=True)
    ask.add_argument("--purpose", required=True)
    ask.add_argument("--epsilon", required=True, help="asked per window of the range, e.g. 0.5")
    ask.add_argument("--credit-cents", type=int, required=True, help="offered to each shop that answers")
    ask.add_argument("--expires-in", type=float, default=86400.0, help="seconds until the query expires")
    ask.add_argument(
        "--district",
        action="store_true",
        help="combine the shops by secure aggregation: the coop sees only the district sum (needs [secagg])",
    )
    district = cmds.add_parser("district", help="the district answer of a query, with its noise bound")
    district.add_argument("config")
    district.add_argument("query_id")
    statement = cmds.add_parser("statement", help="answered queries and credits owed, per shop")
    statement.add_argument("config")
    statement.add_argument("--store", help="one shop only")


def run(args: argparse.Namespace) -> int:
    from agent.contract.licensing import SECURE_AGGREGATION
    from hub import licensing
    from hub.config import load_hub_config
    from hub.db import Database

    if args.licensing_command == "keygen":
        return _keygen(Path(args.key_file))
    config = load_hub_config(args.config)
    database = Database(config.database)
    database.migrate()
    conn = database.connect()
    try:
        if args.licensing_command == "ask":
            if args.district and config.secagg is None:
                print(f"error: {config.path}: --district needs the hub's [secagg] section", file=sys.stderr)
                return EXIT_USAGE
            params = dict(p.split("=", 1) for p in args.param if "=" in p)
            key = base64.b64decode(Path(args.key).read_text().strip())
            message = licensing.compose(
                config.coop,
                key,
                args.kind,
                params,
                args.requester,
                args.purpose,
                Fraction(args.epsilon),
                args.credit_cents,
                time.time_ns() + int(args.expires_in * 1e9),
                SECURE_AGGREGATION if args.district else "",
            )
            with conn.transaction():
                licensing.record_query(conn, message)
            publish_query(config, message)
            print(message["query"]["id"])
            return 0
        if args.licensing_command == "district":
            print(json.dumps(licensing.district_answer(conn, args.query_id), indent=2, sort_keys=True))
            return 0
        print(json.dumps(licensing.statement(conn, args.store), indent=2, sort_keys=True))
        return 0
    finally:
        conn.close()


def _keygen(path: Path) -> int:
    from agent.contract.licensing import new_keypair

    private, public = new_keypair()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"error: {path} exists; the coop's key is never overwritten", file=sys.stderr)
        return EXIT_USAGE
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(private).decode() + "\n")
    print(f'coop_public_key = "{public}"  # for each shop\'s [licensing] section')
    return 0


def publish_query(config: HubConfig, message: dict[str, object], timeout_s: float = 30.0) -> None:
    """Publish one signed query (QoS 1, not retained: a box that misses it is asked again with a new query)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.contract.licensing import query_topic
    from agent.contract.secrets import resolve_secret

    settings = config.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.client_id}-licensing", protocol=mqtt.MQTTv5)
    if settings.username:
        client.username_pw_set(settings.username, resolve_secret(settings.password) or None)
    if settings.tls_ca_file:
        cert, key = settings.tls_cert_file or None, settings.tls_key_file or None
        client.tls_set(ca_certs=settings.tls_ca_file, certfile=cert, keyfile=key)
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        info = client.publish(query_topic(config.coop), json.dumps(message, sort_keys=True), qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published() or info.rc != 0:
            raise RuntimeError(f"the broker did not take the query (rc {info.rc})")
    finally:
        client.disconnect()
        client.loop_stop()
