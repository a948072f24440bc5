"""Sample quality: the digit classifier whose features the metrics use (``classifier``) and the metrics
(``metrics``: MNIST-FID, coverage, precision/recall). ``gankit eval`` itself is ``gankit.evaluate``."""
