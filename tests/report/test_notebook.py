"""The notebook executes top to bottom: on stored results (fast), and running the smoke suite (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPOSITORY = Path(__file__).resolve().parents[2]
NOTEBOOK = REPOSITORY / "notebooks" / "step7_system_integration.ipynb"
CELL_TIMEOUT_S = 600


def _execute(results: Path, run_suite: bool) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(cell for cell in notebook.cells if cell.source.startswith("# Parameters"))
    parameters.source += f"\nRESULTS = Path({str(results)!r})\nRUN_SUITE = {run_suite}\n"
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(REPOSITORY)}}).execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> tuple[str, int]:
    """All text/HTML the cells showed, and how many images."""
    texts, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append(output.get("text", "") + data.get("text/html", "") + data.get("text/plain", ""))
            images += "image/png" in data
    return "\n".join(texts), images


def test_the_notebook_shows_verdicts_and_figures_of_stored_results(results_dir):
    text, images = _outputs(_execute(results_dir, run_suite=False))
    assert "REFUTED" in text and "interaction" in text and "holds 1" in text
    assert images == 6


@pytest.mark.slow
def test_the_notebook_runs_the_smoke_suite(tmp_path):
    text, images = _outputs(_execute(tmp_path / "smoke", run_suite=True))
    assert "trials" in text and "verdict" in text and images >= 4
