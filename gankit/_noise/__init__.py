"""Implementations of noise v2 (the mapping is documented in ``gankit.noise``): NumPy (the reference and
the fallback), C (``_native``, the fast CPU path), torch (other devices). kernels/noise.py is the Triton one."""
