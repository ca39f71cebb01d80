"""Bounds on everything a message may carry besides its released values (those are on each StreamSpec).

A reader refuses what lies outside them before storing anything, so one forged or broken message can
neither overflow an aggregate (64-bit SQL sums), nor push a clock, nor cost unbounded memory or disk.
The bounds are far outside what an honest agent produces: hitting one means the message is wrong.
"""

from __future__ import annotations

import datetime as dt

MAX_PAYLOAD_BYTES = 16 * 1024  # a summary is about 1 kB; refused before JSON parsing
MAX_JSON_DEPTH = 6  # the deepest honest payload nests 3 objects (root, privacy, post_processing)
MAX_INT_DIGITS = 20  # longer integer literals are refused while parsing (Python would build a bignum)
MAX_TEXT = 300  # characters of any free-text field (msg_id, agent, sampler, unit)

# 2^53 - 1: exact in every JSON reader (JavaScript numbers included) and, doubled (status order), far from
# the 64-bit limit. A store releasing one summary a second would need 285 million years to reach it.
SEQ_MAX = 2**53 - 1
CONNECTION_MAX = 2**53 - 1

# Windows: none before 2020 (no shopkeeper release existed), none ending more than a day after the reader's
# clock (an honest window is released after it ends; the day covers a wrong clock on either side).
EARLIEST_WINDOW_S = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
FUTURE_SLACK_S = 86_400

# Privacy block: the agent's own limits (agent/privacy/sampler.py, agent/config/reader.py) with room to spare.
MAX_FRACTION_PART = 2**48  # numerator and denominator of scale, sigma2, epsilon_exact, rho_exact
MAX_EPSILON = 10  # epsilon and rho per window
MAX_WINDOW_TOTAL = 1000  # what one unit costs per window over all streams (rho: Laplace's epsilon^2 / 2 each)
MAX_SENSITIVITY = 2**48
MAX_SUPPRESS_BELOW = 10**7
