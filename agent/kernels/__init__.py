"""numba kernels: pure functions on numpy arrays, compiled through agent.numba_shim."""
