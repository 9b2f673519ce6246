# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Registers the kernels of _kernels.py as ``diffcoll::`` operators with
torch.library.custom_op (PyTorch 2.4 and later), each with its fake kernel
and the arguments it writes."""
from typing import Optional

import torch

from . import _kernels

#: The oldest PyTorch whose torch.library.custom_op the operators are written for.
MIN_TORCH = (2, 4)


def _register() -> Optional[str]:
    """Registers every operator; returns why not where it cannot."""
    if not hasattr(torch.library, "custom_op") or torch.__version__ < MIN_TORCH:
        return (
            f"PyTorch {torch.__version__} has no torch.library.custom_op (it needs {MIN_TORCH[0]}."
            f"{MIN_TORCH[1]} or later): diffcoll.torch runs its operators eagerly, and "
            "torch.compile cannot trace them"
        )
    for name, (kernel, fake, writes) in _kernels.OPERATORS.items():
        op = torch.library.custom_op(f"diffcoll::{name}", mutates_args=writes)(kernel)
        op.register_fake(fake)
    return None


#: None once the operators are registered; otherwise the reason they are not.
UNAVAILABLE_REASON: Optional[str] = _register()
