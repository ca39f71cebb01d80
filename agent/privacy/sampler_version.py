"""The samplers' version, apart from their numba kernels so the resident agent can record it without the JIT."""

#: Recorded in the release ledger next to every noisy value; bump when the output stream changes.
SAMPLER_VERSION = "cks20-numba-1"
