"""Support modules of the benchmarks: kept out of `bench/` itself, whose every `*.py` is run as a
benchmark by `make bench`. What the tests share too lives in `testsupport/`."""
