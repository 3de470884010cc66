"""The prompt and text templates, shipped as the package data ``hybridrec.prompts``.

This folder holds files, not code: one template per ``.txt`` file (see ``README.md``). The
build maps it into the package (``pyproject.toml``: ``[tool.setuptools.package-dir]``), and
:mod:`hybridrec.templates` loads and fills the templates by name. This file only makes the
folder an importable package, so ``importlib.resources`` finds it in a wheel and in an
editable install alike.
"""
