"""The report of a results folder: `index.html` (self-contained), its figures as PNG files and
`summary.json`, all written into the results folder.

`write_report(results_dir)` is the entry point `step7bench run` calls at the end of a run and
`step7bench report` calls on demand.
"""

from __future__ import annotations

from pathlib import Path

from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS
from step7bench.analysis.results import DEFAULT_CLAIMS, Analysis, analyze_folder
from step7bench.analysis.stats import DEFAULT_CONFIDENCE
from step7bench.analysis.summary import write_summary
from step7bench.report.figures import write_figures
from step7bench.report.html import render

FIGURES_FOLDER = "figures"


def write_analysis_report(analysis: Analysis, folder: Path) -> Path:
    """Write index.html, figures/*.png and summary.json of `analysis` into `folder`; returns index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = write_figures(analysis, folder / FIGURES_FOLDER)
    write_summary(analysis, folder / "summary.json")
    index = folder / "index.html"
    index.write_text(render(analysis, figures), encoding="utf-8")
    return index


def write_report(results_dir: Path | str, claims_path: Path | str = DEFAULT_CLAIMS,
                 confidence: float = DEFAULT_CONFIDENCE, downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> Path:
    """Analyse the results in `results_dir` against the claims file and write the report there."""
    results_dir = Path(results_dir)
    return write_analysis_report(analyze_folder(results_dir, claims_path, confidence, downstream_tasks), results_dir)


__all__ = ["write_analysis_report", "write_report"]
