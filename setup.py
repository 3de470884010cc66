"""The package list, the one piece of build configuration pyproject.toml cannot express.

Everything else is in ``pyproject.toml``. The packages are every ``hybridrec*`` folder plus
``hybridrec.prompts``, whose files live in the top-level ``prompts/`` folder (mapped there by
``[tool.setuptools.package-dir]``): ``[tool.setuptools.packages.find]`` only finds a package in
a folder of its own name, so it cannot list that one.
"""

from setuptools import find_namespace_packages, setup

packages = find_namespace_packages(include=["hybridrec", "hybridrec.*"])
setup(packages=[*packages, "hybridrec.prompts"])
