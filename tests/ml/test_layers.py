"""service.ml is the bottom layer: it imports nothing else of service, and its portable
predictor needs numpy and the standard library alone."""

from __future__ import annotations

import subprocess
import sys

import grimp


def test_portable_imports_only_numpy_and_the_standard_library() -> None:
    heavy = ["fastapi", "sqlalchemy", "sklearn", "pyarrow", "scipy", "pydantic"]
    code = (
        "import sys, service.ml.portable; "
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})); "
        "assert not loaded, f'imported {loaded}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ml_imports_nothing_else_of_service() -> None:
    # The import-linter contract lists today's modules; this covers any module added later.
    graph = grimp.build_graph("service")
    outside = {
        (importer, imported)
        for importer in graph.find_descendants("service.ml") | {"service.ml"}
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("service.") and not imported.startswith("service.ml.")
    }
    assert not outside
