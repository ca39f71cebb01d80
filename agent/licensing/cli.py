"""`shopkeeper queries list|approve|refuse CONFIG [ID]`: the owner's say on the coop's queries."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    queries = sub.add_parser("queries", help="the coop's licensing queries: list, approve or refuse them")
    queries.add_argument("action", choices=("list", "approve", "refuse"))
    queries.add_argument("config", help="the agent's TOML file")
    queries.add_argument("query_id", nargs="?", help="the query to approve or refuse")
    queries.add_argument("--reason", default="", help="why you refuse (sent to the coop)")
    queries.add_argument("--json", action="store_true")
    queries.set_defaults(func=run)


def combine_of(row: dict[str, Any]) -> str:
    """The query's `combine` from the signed message the box verified ("" : each shop answers alone)."""
    return str(json.loads(row["signed"])["query"].get("combine", ""))


def describe(row: dict[str, Any]) -> str:
    params = ", ".join(f"{k} {v}" for k, v in sorted(json.loads(row["params"]).items()))
    district = " (district figure, by secure aggregation)" if combine_of(row) else ""
    line = (
        f"{row['query_id']}  {row['status']:<13} {row['kind']} ({params}){district} for {row['requester']}:"
        f" {row['purpose']!r}; epsilon {row['epsilon']}, credit {row['credit_cents'] / 100:.2f}"
    )
    return line + (f"; {row['reason']}" if row["reason"] else "")


def earned(rows: list[dict[str, Any]]) -> str:
    """This box's side of the coop's statement: the credit of every answered query."""
    answered = [r for r in rows if r["status"] == "answered"]
    total = sum(int(r["credit_cents"]) for r in answered)
    return f"earned {total / 100:.2f} from {len(answered)} answered quer{'y' if len(answered) == 1 else 'ies'}"


def run(args: argparse.Namespace) -> int:
    from agent.config import load_config  # here, so that `shopkeeper --help` stays quick
    from agent.licensing.desk import decide
    from agent.store import Store
    from agent.store import licensing as licensing_sql

    config = load_config(args.config)
    store = Store(config.db_path)
    try:
        if args.action == "list":
            rows = licensing_sql.queries(store.conn())
            if args.json:
                out = [{**{k: v for k, v in r.items() if k != "signed"}, "combine": combine_of(r)} for r in rows]
                print(json.dumps(out, indent=2))
            else:
                print("\n".join([*(describe(r) for r in rows), earned(rows)]) if rows else "no queries yet")
            return 0
        if not args.query_id:
            print(f"error: `shopkeeper queries {args.action}` needs the query's id (see `shopkeeper queries list`)")
            return 2
        outcome = decide(store, args.query_id, args.action == "approve", time.time_ns(), args.reason)
        print(outcome if outcome in ("approved", "refused") else f"error: {outcome}")
        return 0 if outcome in ("approved", "refused") else 1
    finally:
        store.close()
