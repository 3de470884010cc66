"""Dynamic int8 quantisation of a backbone for CPU scoring.

:func:`quantized_copy` returns a new :class:`~hybridrec.rerank.backbone.Backbone` whose linear
layers hold int8 weights and quantise their activations on the fly (PyTorch's
``quantize_dynamic``). The original backbone is untouched: it is the one saved and trained. PEFT
adapters are merged into the copy first, and GPT-2's ``Conv1D`` layers (transposed linear
layers) are turned into ``nn.Linear`` so that they are quantised too. Embeddings stay float32.

int8 kernels run on the CPU only. Measured cost (``benchmarks/rerank/README.md``): it scores
about 2.5x faster, but it wipes out SmolLM2-135M's signal (rating-task AUC 0.585 in float32,
0.421 with this copy; its scores correlate with the float ones at about 0 per-tensor and 0.2
per-channel, activation outliers being the likely cause). Measure it on your model before use.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

QUANTIZATIONS = (None, "int8")


def _linear_from_conv1d(conv: Any) -> torch.nn.Linear:
    """The ``nn.Linear`` equal to a transformers ``Conv1D`` (weight ``(in, out)``)."""
    n_in, n_out = conv.weight.shape
    linear = torch.nn.Linear(n_in, n_out, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear


def _replace_conv1d(module: torch.nn.Module) -> None:
    from transformers.pytorch_utils import Conv1D

    for name, child in module.named_children():
        if isinstance(child, Conv1D):
            setattr(module, name, _linear_from_conv1d(child))
        else:
            _replace_conv1d(child)


def quantized_copy(backbone: Any) -> Any:
    """An int8 copy of ``backbone`` on the CPU, for scoring only.

    Args:
        backbone: a :class:`~hybridrec.rerank.backbone.Backbone` (PEFT-wrapped or not).

    Returns:
        a new ``Backbone`` with the same tokenizer, head, name and answers.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0, device="cpu")
        >>> q = quantized_copy(bb)
        >>> s, t = bb.score_texts(["Liked: Heat"]), q.score_texts(["Liked: Heat"])
        >>> bool(abs(s - t).max() < 0.1), q.decoder.h[0].mlp.c_fc._get_name()
        (True, 'DynamicQuantizedLinear')
    """
    from hybridrec.rerank.backbone import Backbone

    model = copy.deepcopy(backbone.model).to("cpu")
    if hasattr(model, "merge_and_unload"):  # PEFT: fold the adapter into the weights
        model = model.merge_and_unload()
    _replace_conv1d(model)
    with warnings.catch_warnings():
        # torch marks its quantised tensor types as deprecated in favour of torchao, which
        # targets GPUs; the CPU kernels of quantize_dynamic are still the ones to use here.
        warnings.filterwarnings("ignore", message=".*quantiz", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    return Backbone(
        model, backbone.tokenizer, backbone.head, name=backbone.name,
        answers=backbone.answers, device="cpu",
    )  # fmt: skip
