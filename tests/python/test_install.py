"""The package as `cmake --install` puts it: importable from any directory,
loading the library installed beside it (not the build tree's), and where
Debian's python3 looks for packages."""

import os
import re
import subprocess
import sys

import pytest

import psmq
from conftest import BUILD_DIR, SOURCE_DIR


def test_the_version_is_the_cmake_projects():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        project = re.search(r"project \(psmq VERSION ([0-9.]+)", f.read()).group(1)
    assert psmq.__version__ == project


def test_installed_package_loads_the_installed_library(tmp_path):
    if not os.path.exists(os.path.join(BUILD_DIR, "cmake_install.cmake")):
        pytest.fail("%s is not a configured build directory (set PSMQ_BUILD_DIR)" % BUILD_DIR)
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", str(prefix)], check=True,
                   timeout=120, stdout=subprocess.DEVNULL)
    packages = list(prefix.glob("lib/python3*/dist-packages/psmq/__init__.py"))
    assert len(packages) == 1, packages
    site = packages[0].parent.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    #  Nothing that points at the source or build tree
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PSMQ_LIBRARY", "PSMQ_BUILD_DIR", "PSMQ_SOURCE_DIR")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", "import psmq; print(psmq.__file__); "
                          "print(psmq.library_path)"], cwd=elsewhere, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.split("\n")
    assert out[0] == str(site / "psmq" / "__init__.py")
    library = out[1]
    assert library.startswith(str(prefix) + os.sep) and library.endswith("libpsworker.so.0")
    assert os.path.exists(library)


def test_the_install_directory_is_on_debians_python_path():
    site = os.environ.get("PSMQ_PYTHON_SITE")
    if not site or not (site.startswith("/usr/lib/") or site.startswith("/usr/local/lib/")):
        pytest.skip("the build installs to %s, not /usr or /usr/local" % site)
    path = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('\\n'.join(sys.path))"],
                          check=True, capture_output=True, text=True, timeout=30,
                          cwd="/").stdout.split("\n")
    assert site in path
