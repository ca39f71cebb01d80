"""The errors of secure aggregation: one base, a refusal by an honest shop, and an aborted round."""

from __future__ import annotations

from agent.errors import AgentError


class SecAggError(AgentError):
    """A secure-aggregation message or round cannot be used; nothing secret was revealed for it."""


class Refused(SecAggError):
    """An honest shop refused a request that would reveal more than the sum (for example both secrets of one peer)."""


class RoundAborted(SecAggError):
    """The round cannot finish (too few shops at some step); it reveals nothing and its windows stay spent."""
