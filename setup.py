"""The package list; the rest of the metadata lives in pyproject.toml.

A wheel installs everything under `attnlab`: attnlab's own packages, and the checkout's top-level
folders configs/, experiments/, launch/ and benchmarks/ as attnlab.configs, attnlab.experiments,
attnlab.launch and attnlab.benchmarks (nothing else at the top of site-packages). In a checkout
without an install, `attnlab.layout` makes the same names importable.
"""
from setuptools import find_packages, setup

FOLDERS = ("configs", "experiments", "launch", "benchmarks")  # = attnlab.layout.FOLDERS

setup(packages=find_packages(include=["attnlab", "attnlab.*"]) + [f"attnlab.{f}" for f in FOLDERS],
      package_dir={f"attnlab.{f}": f for f in FOLDERS},
      package_data={"attnlab.launch": ["*.sh"]})
