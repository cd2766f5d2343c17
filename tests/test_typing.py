"""The package type-checks with mypy (settings in pyproject.toml), stubs of _core included."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean():
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stub_names_match_the_compiled_module():
    import ast

    import cryocore._core as core

    stub = ast.parse((ROOT / "python" / "cryocore" / "_core.pyi").read_text())
    names = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    compiled = {k for k in dir(core) if not k.startswith("_") and callable(getattr(core, k))}
    assert names == compiled
