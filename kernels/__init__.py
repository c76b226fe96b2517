"""Workload kernels for the simulated chip, each with a numpy reference of the same maths.

This folder is installed as ``simulator.kernels`` (``package-dir`` in pyproject.toml). It is
not a top-level ``kernels`` package: that name belongs to an unrelated PyPI package (Hugging
Face's, which ``transformers`` imports). When the checkout root is on ``sys.path`` (running
``python -m simulator`` from it) and something imports ``kernels``, this file hands the import
over to the next ``kernels`` on ``sys.path``, or fails as if the folder were not there.
"""

if __name__ == "kernels":  # imported as a top-level package from the checkout root
    def _hand_over(name: str) -> None:
        """Replace this module in ``sys.modules[name]`` by the next regular package ``name``
        on ``sys.path`` outside this checkout; raise ModuleNotFoundError when there is none."""
        import importlib.machinery
        import importlib.util
        import os
        import sys
        here = os.path.realpath(os.path.dirname(os.path.dirname(__file__)))
        rest = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
        spec = importlib.machinery.PathFinder.find_spec(name, rest)
        if spec is None or spec.loader is None or spec.origin in (None, "namespace"):
            del sys.modules[name]
            raise ModuleNotFoundError(f"No module named {name!r} (the checkout's kernels/ "
                                      "folder is simulator.kernels)", name=name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # the import statement returns what sys.modules holds
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise

    _hand_over(__name__)
