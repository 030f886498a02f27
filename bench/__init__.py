"""Benchmarks that print figures and record them in bench/RESULTS.md (not pass/fail tests).

Run each from the repository root as a module, `python -m bench.<name> --help`, so that
`cifar_demo`, `bench` and `tests` import without path tricks.
"""
