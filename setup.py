"""The C extension of gankit.noise (gankit/_noise/native.c); every other setting is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gankit._noise._native",
            ["gankit/_noise/native.c"],
            # Bit-exactness needs IEEE float32 ops as written: no FMA contraction (GCC's default for C is
            # -ffp-contract=fast) and no -ffast-math. -fno-math-errno only lets sqrtf become one instruction.
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-pthread"],
            extra_link_args=["-pthread"],
            # Without a compiler gankit.noise falls back to NumPy (the same values, slower); CI requires the
            # build (GANKIT_REQUIRE_NATIVE=1, set by `make test`, see tests/test_noise.py).
            optional=True,
        )
    ]
)
