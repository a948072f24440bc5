"""Performance: the environment of a result (``environment``), device ceilings and rooflines (``ceilings``), the
benchmark runner (``bench``) and how its results read (``report``)."""
