"""The shop owner's own window: a local page and plain-words status of the shop's exact figures and what left it.

Everything here reads the box's own SQLite file and shows it to the owner; nothing in this package
publishes anything. The page is served on loopback unless the owner set a password (settings.py).
"""
