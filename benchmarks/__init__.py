"""gankit's benchmarks: scripts run as ``python -m benchmarks.NAME`` from the repository root, sharing one harness
(``benchmarks.harness``: environment, results as JSON + Markdown, docs blocks), and pytest-benchmark suites."""
