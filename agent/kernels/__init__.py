"""numba kernels: pure functions on numpy arrays, compiled through agent.kernels.numba_shim."""
