"""Makes ``tests/reference/`` importable as the package ``mmvit_reference``.

The former implementations kept there are what the fast paths are tested
against. An installed package may own the name ``tests``, so they cannot be
imported as ``tests.reference``; pytest loads this file by path before it
collects any test module below it, so a test file imports them as
``from mmvit_reference import pale_reference``, and a reference imports a
sibling relatively.
"""
import sys
import types
from pathlib import Path

REFERENCE_PACKAGE = 'mmvit_reference'

if REFERENCE_PACKAGE not in sys.modules:
    package = types.ModuleType(REFERENCE_PACKAGE, 'Former implementations kept as test references.')
    package.__path__ = [str(Path(__file__).resolve().parent / 'reference')]
    sys.modules[REFERENCE_PACKAGE] = package
