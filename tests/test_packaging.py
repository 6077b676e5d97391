"""The wheel `pip install .` builds: every module of the library, the plugins and the CLI inside the
`zoo` package (no bare top-level `plugins` or `cli`), with its data files, and no module that is not in
the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


def test_the_wheel_holds_every_module_under_zoo_and_nothing_else(tmp_path):
    pytest.importorskip("setuptools", reason="builds the wheel offline with the installed build backend")
    # built from a copy: a build/ folder left in the checkout could add modules deleted since
    skipped = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".data", ".whl")

    def ignore(folder, names):  # runs/ at the top is users' run folders; zoo/runs/ is a package
        return set(skipped(folder, names)) | ({"runs"} if Path(folder) == REPO else set())

    tree = shutil.copytree(REPO, tmp_path / "src", ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(tree)], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"zoo", wheel.name.split("-py")[0] + ".dist-info"}, names
    sources = {"zoo/plugins": tree / "plugins", "zoo/cli": tree / "cli", "zoo": tree / "zoo"}
    expected = {f"{prefix}/{path.relative_to(folder).as_posix()}"
                for prefix, folder in sources.items() for path in folder.rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == expected
    assert {"zoo/registry.toml", "zoo/spaces/report-000-fashion-random.toml"} <= names
    assert any(n.startswith("zoo/weights/") and n.endswith(".safetensors") for n in names)
