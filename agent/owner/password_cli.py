"""`shopkeeper owner-password`: ask for the owner's password and print the line for `[owner_page]`."""

from __future__ import annotations

import getpass
import sys

from agent.owner.settings import MIN_PASSWORD, hash_password


def owner_password(from_stdin: bool = False) -> int:
    """Print `password_hash = "scrypt$..."`; the password itself is never stored or shown."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        again = password
    else:
        password = getpass.getpass(f"owner page password (at least {MIN_PASSWORD} characters): ")
        again = getpass.getpass("the same again: ")
    if password != again:
        print("error: the two passwords differ; nothing changed", file=sys.stderr)
        return 1
    try:
        line = f'password_hash = "{hash_password(password)}"'
    except ValueError as exc:
        print(f"error: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(line)
    print(
        '# put this line under [owner_page] in the agent\'s configuration, set listen = "0.0.0.0:8088" to open'
        " the page to the shop's network, then restart the agent (systemctl restart shopkeeper)",
        file=sys.stderr,
    )
    return 0
