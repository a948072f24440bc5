"""Sampling at scale: the job (``job``), the run folder's records (``manifest``), the lanes that make batches
(``lanes``), shards made ahead of the writer (``pipeline``), shard files (``writer``), torchrun ranks (``ranks``),
the engine that ties them (``engine``: ``sample``, ``generate``) and batches for a training loop (``dataset``)."""
