"""Sampling at scale: the job (``job``), the run folder's records (``manifest``), shard files (``writer``),
torchrun ranks (``ranks``) and the engine that ties them (``engine``: ``sample``, ``generate``)."""
