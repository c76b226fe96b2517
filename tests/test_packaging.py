"""The installed distribution exposes the kernels as ``simulator.kernels`` and no top-level
``kernels`` package (that name belongs to an unrelated PyPI package, Hugging Face's, which
``transformers`` imports), also when the checkout root is first on sys.path."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = r"""
import importlib.util, pathlib
import simulator.kernels.conv, simulator.kernels.train, simulator.kernels.reference
from simulator.kernels.train import parse_model
assert pathlib.Path(simulator.kernels.__file__).parent.name == "kernels", simulator.kernels.__file__
spec = importlib.util.find_spec("kernels")  # None, or PyPI's (the [test] extra installs it)
ours = pathlib.Path(simulator.kernels.__file__).parent
assert spec is None or pathlib.Path(spec.origin).parent != ours, spec
print("ok")
"""


def test_kernels_install_as_simulator_kernels(tmp_path):
    # run outside the repository so the checkout's own folders are not on sys.path
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert (ROOT / "kernels" / "__init__.py").is_file()


# With the checkout root first on sys.path (``python -m simulator`` run from it), the folder
# kernels/ must not stand in for another top-level ``kernels`` package.
SHADOW = r"""
import importlib.metadata, pathlib, sys
root, fake = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
if fake:
    sys.path.insert(1, fake)
import simulator.kernels.zoo
assert pathlib.Path(simulator.kernels.zoo.__file__).parent == pathlib.Path(root, "kernels")
import kernels
print(pathlib.Path(kernels.__file__).resolve())
print(getattr(kernels, "MARK", "-"))
"""


def _shadow_run(*args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Return the finished SHADOW script run with ``args`` (checkout root, fake package dir)."""
    return subprocess.run([sys.executable, *flags, "-c", SHADOW, *args], capture_output=True,
                          text=True, timeout=120)


def test_a_kernels_package_after_the_checkout_root_wins(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("MARK = 'fake'\n")
    proc = _shadow_run(str(ROOT), str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path, mark = proc.stdout.split()
    assert (path, mark) == (str((tmp_path / "kernels" / "__init__.py").resolve()), "fake")


def test_pypi_kernels_wins_over_the_checkout_folder():
    # Hugging Face's ``kernels`` (in the [test] extra) lives in site-packages, after the root
    try:
        dist = importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:  # outside CI, an older [test] install
        pytest.skip("PyPI's kernels is not installed (pip install -e '.[test]')")
    proc = _shadow_run(str(ROOT), "")
    assert proc.returncode == 0, proc.stderr
    path = pathlib.Path(proc.stdout.split()[0])
    assert path == pathlib.Path(dist.locate_file("kernels/__init__.py")).resolve()
    assert path != (ROOT / "kernels" / "__init__.py").resolve()


def test_without_another_kernels_the_import_fails(tmp_path):
    # -S: no site-packages, so nothing but the checkout could provide ``kernels``
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "try:\n    import kernels\nexcept ModuleNotFoundError as e:\n"
              "    print('missing', e.name, 'kernels' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-S", "-c", script, str(ROOT)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["missing", "kernels", "False"]


def test_transformers_imports_from_the_checkout_root():
    # transformers imports PyPI's ``kernels`` (CUDAProperties); run only where it is installed
    # (it is not in the [test] extra: 130 MB installed), else the fake-package test stands in
    if importlib.util.find_spec("transformers") is None:
        return
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import transformers\n"
              "from transformers import BertConfig\nprint(BertConfig().hidden_size)")
    proc = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "768"


def test_regular_install_keeps_simulator_kernels(tmp_path):
    src = tmp_path / "src"
    for part in ("simulator", "kernels"):
        shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (target / "kernels").exists()
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import simulator.kernels.zoo as z\n"
              "print(z.__file__)")
    proc = subprocess.run([sys.executable, "-c", script, str(target)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pathlib.Path(proc.stdout.strip()) == target / "simulator" / "kernels" / "zoo.py"
