# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Loads the SWIG extension (diffcoll_c / _diffcoll_c) generated from bindings/swig/diffcoll.i.

Installed, the extension sits inside this package; in a build tree it is a
top-level module on PYTHONPATH (CTest sets that up).
"""
from __future__ import annotations

import importlib
from types import ModuleType


def _load() -> ModuleType:
    try:  # installed layout: diffcoll/diffcoll_c.py + diffcoll/_diffcoll_c*.so
        return importlib.import_module(f"{__package__}.diffcoll_c")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.diffcoll_c":
            raise
    # build tree: <build>/bindings/python/diffcoll_c.py on PYTHONPATH
    return importlib.import_module("diffcoll_c")


c = _load()

__all__ = ["c"]
