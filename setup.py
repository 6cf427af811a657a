"""The chapters' notebooks travel in the wheel as ``advlab/notebooks``, so ``advlab run`` works in an
environment that holds advlab but no checkout of the book (pyproject.toml holds everything else)."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithNotebooks(build_py):
    def run(self):
        super().run()
        here = Path(__file__).resolve().parent / "notebooks"
        target = Path(self.build_lib) / "advlab" / "notebooks"
        self.mkpath(str(target))
        for notebook in sorted(here.glob("*.py")):
            self.copy_file(str(notebook), str(target / notebook.name))


setup(cmdclass={"build_py": BuildWithNotebooks})
