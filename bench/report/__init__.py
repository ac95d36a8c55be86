"""RESULTS.md, docs/SCALING.md and their plots, written from the measurements in bench/results/
(never by hand): results.py loads them into one object, verdicts.py judges them (pure functions),
markdown.py formats, plots.py draws, sections.py and runs.py render one section each from
recorded facts only, __main__.py puts RESULTS.md together (`python -m bench.report [--quick]`)."""
