"""The one thing pyproject.toml cannot tell setuptools: templates/ stays at the top of the
repository (SPEC.md's layout) and ships inside the package as `sfarm.templates`, read with
importlib.resources (sfarm.resources). `packages.find` names packages after their directories,
so the list is made here: every package under sfarm/, and templates/ under its package name.
Both a wheel and `pip install -e .` (setuptools' editable finder maps the name) see it."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["sfarm", "sfarm.*"]), "sfarm.templates"],
      package_dir={"sfarm.templates": "templates"})
