"""Where the harness keeps what it measures: one place for every module that reads or writes it."""

from service.settings import ROOT

RESULTS = ROOT / "bench" / "results"  # JSON of every run; the committed ones feed RESULTS.md
PLOTS = ROOT / "bench" / "plots"  # the full run's plots, committed with RESULTS.md
RESULTS_MD = ROOT / "RESULTS.md"
SCALING_MD = ROOT / "docs" / "SCALING.md"
