"""Test and benchmark tooling: never installed (not in pyproject's package list), imported from a checkout.

tests/ find it because pytest puts the checkout on sys.path; bench/ scripts add the checkout themselves.
"""
