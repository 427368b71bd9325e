"""The training stage: a compact GPT-2 trained on the token files, exported for transformers.

Modules (read in this order): ``config`` (named sizes, no torch), ``data`` (token
files and windows, numpy only), ``model`` (GPT-2 in PyTorch), ``trainer`` (the
loop, checkpoints, resume), ``export`` (config.json + model.safetensors for
``transformers``), ``validate`` (loss against baselines, samples, loss curve),
``stage`` (train + validate as one build stage) and ``commands`` (argparse
options for the CLI, no torch import until a command runs).

Importing this package does not import torch: PyTorch is the optional extra
``webtext[train]``; ``require_torch()`` says how to install it.
"""

from __future__ import annotations

import importlib.util


class TrainUsageError(ValueError):
    """A bad option, a missing input or a missing dependency: print as one line, exit 2."""


def require_torch() -> None:
    """Raise TrainUsageError naming the install command when PyTorch or safetensors is absent."""
    missing = [name for name in ("torch", "safetensors") if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainUsageError(
            f"the train stage needs {' and '.join(missing)}: pip install 'webtext[train]' "
            "(for a GPU, install the PyTorch build that matches its CUDA version first)"
        )
