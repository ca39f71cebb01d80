"""Data licensing: signed queries from the coop's fixed catalogue, answered on the box under the shop's policy
and the privacy filter, released once, in the ledger with the query id and the credit (docs/licensing.md)."""
