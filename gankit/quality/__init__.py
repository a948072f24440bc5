"""Sample quality: the digit classifier whose features the metrics use (``classifier``) and the metrics
(``metrics``: MNIST-FID, coverage, precision/recall). ``gankit eval`` itself is ``gankit.evaluate``."""

HALF = 2500  # each half of the bundled real digits (250 of each digit); a generated set is scored at this size
