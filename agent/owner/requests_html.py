"""The owner page's "Data requests" section: the coop's licensing queries, with Approve and Refuse buttons."""

from __future__ import annotations

import json
from html import escape
from typing import Any

WORDS = {
    "received": "just arrived",
    "pending": "waiting for you",
    "approved": "approved; answering at the next tick",
    "owner_refused": "refused by you; sending the refusal",
    "answered": "answered",
    "refused": "refused",
    "accepted": "accepted; waiting for the coop's secure round",
    "not_combined": "entered the round, which ended without it (its windows are spent; no credit)",
}
DISTRICT = (
    " A district figure: your answer goes only into the coop's secure sum of the shops that say yes (the coop"
    " never sees this shop's own figures)."
)


def _is_district(row: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(row.get("signed") or "{}").get("query", {}).get("combine"))
    except (ValueError, AttributeError):
        return False


def requests_html(rows: list[dict[str, Any]], csrf: str, signed_in: bool, enabled: bool) -> str:
    """One line per query, newest first; pending ones get buttons when the owner is signed in."""
    out = ['<h2 id="data-requests">Data requests from the coop</h2>']
    if not enabled:
        out.append("<p>This shop takes no data requests ([licensing] is not set; docs/licensing.md).</p>")
        return "".join(out)
    out.append(
        "<p>The coop may ask this box a question from a fixed list. Saying yes sends one noisy answer (never your"
        " exact figures), spends the \u03b5 shown from every window the question covers, and earns the credit"
        " shown.</p>"
    )
    if not rows:
        return "".join(out) + "<p>No requests yet.</p>"
    out.append('<ul class="requests">')
    for r in rows:
        params = ", ".join(f"{k} {v}" for k, v in sorted(json.loads(r["params"]).items()))
        line = (
            f'<li class="request" data-query-id="{escape(r["query_id"])}" data-status="{escape(r["status"])}">'
            f"<b>{escape(WORDS.get(r['status'], r['status']))}</b> \u2013 {escape(r['requester'])} asks for"
            f" {escape(r['kind'].replace('_', ' '))} ({escape(params)}): {escape(r['purpose'])}."
            f"{DISTRICT if _is_district(r) else ''}"
            f' <span class="small">\u03b5 {escape(r["epsilon"])}, credit {r["credit_cents"] / 100:.2f}'
            f"{'; ' + escape(r['reason']) if r['reason'] else ''}</span>"
        )
        if r["status"] == "pending" and signed_in:
            for action, label in (("approve", "Approve"), ("refuse", "Refuse")):
                line += (
                    f'<form class="inline" method="post" action="/queries/{action}">'
                    f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
                    f'<input type="hidden" name="query_id" value="{escape(r["query_id"])}">'
                    f"<button>{label}</button></form>"
                )
        elif r["status"] == "pending":
            line += (
                ' <span class="small">Set a password (<code>shopkeeper owner-password</code>) and sign in to decide'
                " here, or run <code>shopkeeper queries approve|refuse</code> on the box.</span>"
            )
        out.append(line + "</li>")
    out.append("</ul>")
    return "".join(out)
