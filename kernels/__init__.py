"""gankit's Triton kernels (a top-level package; unrelated to the PyPI project named ``kernels``).

Importing this package does not import Triton: import the kernel modules themselves.
"""

GANKIT_KERNELS = True
