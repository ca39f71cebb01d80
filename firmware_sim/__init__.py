"""Byte-exact device simulators on pseudo-terminals, with a store-traffic model and ground truth."""
