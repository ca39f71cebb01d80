"""Device and feed drivers, one subpackage each (found through the `shopkeeper.drivers` entry points)."""
