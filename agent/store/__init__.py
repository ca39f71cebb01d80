"""The store owns SQLite: the file, its migrations, and the SQL the pipeline needs.

Every query function takes the caller's connection, so each caller keeps its own transaction
boundaries (the release writes ledger, spends and outbox rows in ONE transaction).
"""

from agent.store.database import Store

__all__ = ["Store"]
