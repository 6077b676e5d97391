"""The wheel `pip install .` builds: every module of the library, the plugins and the CLI inside the
`zoo` package (no bare top-level `plugins` or `cli`), with its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO


def test_the_wheel_holds_every_module_under_zoo_and_nothing_else(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel, = tmp_path.glob("zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"zoo", wheel.name.split("-py")[0] + ".dist-info"}, names
    sources = {"zoo": REPO / "zoo", "zoo/plugins": REPO / "plugins", "zoo/cli": REPO / "cli"}
    for prefix, folder in sources.items():
        for path in folder.rglob("*.py"):
            assert f"{prefix}/{path.relative_to(folder).as_posix()}" in names, f"{path} is not in the wheel"
    assert {"zoo/registry.toml", "zoo/spaces/report-000-fashion-random.toml"} <= names
    assert any(n.startswith("zoo/weights/") and n.endswith(".safetensors") for n in names)
