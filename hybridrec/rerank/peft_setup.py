"""Freezing strategies of reranker fine-tuning: what trains, and the PEFT adapters.

``full``
    every weight trains.
``top``
    the top ``n`` transformer blocks, the final norm and (``classifier`` head) the new score
    layer train; everything else (embeddings, lower blocks, the LM head) is frozen. The blocks
    are found generically (``model.transformer.h`` for GPT-2, ``model.model.layers`` for Llama,
    else the decoder's one ``ModuleList`` of ``num_hidden_layers`` blocks).
``lora``, ``adalora``, ``ia3``
    the base weights are frozen and ``peft`` adapters are injected (:func:`apply_peft`). With the
    ``classifier`` head, the score layer is in ``modules_to_save`` (it trains and is saved with
    the adapter); with the ``verbalizer`` head the LM head stays frozen (it is the pretrained
    vocabulary the answers are read from).

Example:
    >>> from hybridrec.rerank.backbone import Backbone
    >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0, device="cpu")
    >>> freeze_top(bb, 1)
    >>> trainable_names(bb.model)[-1]
    'score.weight'
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from hybridrec.rerank.backbone import Backbone

logger = logging.getLogger(__name__)

#: the freezing strategies (see the module's notes)
STRATEGIES = ("full", "top", "lora", "adalora", "ia3")
PEFT_STRATEGIES = ("lora", "adalora", "ia3")

#: LoRA / AdaLoRA target modules by ``config.model_type`` (others: peft's own defaults)
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "llama": ("q_proj", "v_proj"),
}

#: models whose linear layers are ``Conv1D`` (weights stored transposed)
_FAN_IN_FAN_OUT = {"gpt2"}


def _base(model: Any) -> Any:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def trainable_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that require gradients, in model order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def transformer_blocks(backbone: Backbone) -> torch.nn.ModuleList:
    """The decoder's transformer blocks, bottom first.

    Raises:
        ValueError: no block list found (names the model class).

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> len(transformer_blocks(Backbone.load("tiny-gpt2", device="cpu")))
        2
    """
    decoder = backbone.decoder
    for attr in ("h", "layers", "blocks", "layer"):
        blocks = getattr(decoder, attr, None)
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0:
            return blocks
    config = backbone.config
    n = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    for module in decoder.modules():
        if isinstance(module, torch.nn.ModuleList) and n and len(module) == n:
            return module
    raise ValueError(
        f"cannot find the transformer blocks of {type(decoder).__name__}; use the 'full' or a "
        f"PEFT strategy"
    )


def _final_norm(decoder: Any) -> torch.nn.Module | None:
    for attr in ("ln_f", "norm", "final_layer_norm", "final_layernorm"):
        module = getattr(decoder, attr, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


def freeze_top(backbone: Backbone, n: int) -> None:
    """Train only the top ``n`` blocks, the final norm and the classifier head (if any).

    Raises:
        ValueError: ``n`` not in ``1 .. number of blocks``.
    """
    blocks = transformer_blocks(backbone)
    if not 1 <= n <= len(blocks):
        raise ValueError(f"top_n must be between 1 and {len(blocks)} (the blocks), got {n}")
    model = backbone.model
    for p in model.parameters():
        p.requires_grad_(False)
    train: list[torch.nn.Module] = list(blocks[len(blocks) - n :])
    norm = _final_norm(backbone.decoder)
    if norm is not None:
        train.append(norm)
    if backbone.head == "classifier":
        train.append(_base(model).score)
    for module in train:
        for p in module.parameters():
            p.requires_grad_(True)


def default_targets(model_type: str) -> list[str] | None:
    """LoRA target modules for an architecture, or ``None`` (peft's own default)."""
    targets = LORA_TARGETS.get(model_type)
    return list(targets) if targets else None


def peft_config(
    backbone: Backbone,
    strategy: str,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: list[str] | None = None,
    init_r: int = 12,
    target_r: int = 4,
    tinit: int = 0,
    tfinal: int = 0,
    delta_t: int = 1,
    orth_reg_weight: float = 0.5,
    total_step: int = 1,
) -> Any:
    """The ``peft`` config of a strategy (``lora``, ``adalora``, ``ia3``) for a backbone.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> cfg = peft_config(Backbone.load("tiny-gpt2", device="cpu"), "lora", r=4)
        >>> sorted(cfg.target_modules), sorted(cfg.modules_to_save)
        (['c_attn'], ['score'])
    """
    from peft import AdaLoraConfig, IA3Config, LoraConfig, TaskType

    model_type = getattr(backbone.config, "model_type", "")
    classifier = backbone.head == "classifier"
    common: dict[str, Any] = {
        "task_type": TaskType.SEQ_CLS if classifier else TaskType.CAUSAL_LM,
        "modules_to_save": ["score"] if classifier else None,
        "fan_in_fan_out": model_type in _FAN_IN_FAN_OUT,
    }
    targets = list(target_modules) if target_modules else None
    if strategy == "lora":
        return LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout,
            target_modules=targets or default_targets(model_type), **common,
        )  # fmt: skip
    if strategy == "adalora":
        return AdaLoraConfig(
            init_r=init_r, target_r=target_r, tinit=tinit, tfinal=tfinal, deltaT=delta_t,
            lora_alpha=alpha, lora_dropout=dropout, orth_reg_weight=orth_reg_weight,
            total_step=max(1, total_step), target_modules=targets or default_targets(model_type),
            **common,
        )  # fmt: skip
    if strategy == "ia3":
        # peft's per-architecture defaults (GPT-2: c_attn and mlp.c_proj, the latter feed-forward)
        feedforward = [] if targets else None
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, **common)
    raise ValueError(f"not a PEFT strategy: {strategy!r}; known: {', '.join(PEFT_STRATEGIES)}")


def apply_peft(backbone: Backbone, config: Any) -> None:
    """Wrap ``backbone.model`` with adapters (in place); the LM head stays frozen.

    Raises:
        ValueError: the model is already a PEFT model.
    """
    from peft import PeftModel, get_peft_model

    if isinstance(backbone.model, PeftModel):
        raise ValueError(
            f"{backbone.name}: the model already has adapters; fine-tune it with the 'full' "
            f"strategy or load the base model again"
        )
    backbone.model = get_peft_model(backbone.model, config)
    if backbone.head == "verbalizer":
        out = _base(backbone.model).get_output_embeddings()
        for p in out.parameters():
            p.requires_grad_(False)


def apply_strategy(backbone: Backbone, strategy: str, *, top_n: int = 1, **peft_kw: Any) -> None:
    """Set what trains in ``backbone.model`` (in place) for a strategy.

    Args:
        backbone: the backbone to fine-tune.
        strategy: one of :data:`STRATEGIES`.
        top_n: the number of blocks ``top`` trains.
        **peft_kw: passed to :func:`peft_config`.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "classifier", device="cpu")
        >>> apply_strategy(bb, "lora", r=2)
        >>> type(bb.model).__name__
        'PeftModelForSequenceClassification'
    """
    if strategy == "full":
        for p in backbone.model.parameters():
            p.requires_grad_(True)
    elif strategy == "top":
        freeze_top(backbone, top_n)
    elif strategy in PEFT_STRATEGIES:
        apply_peft(backbone, peft_config(backbone, strategy, **peft_kw))
    else:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    n_train = sum(p.numel() for p in backbone.model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in backbone.model.parameters())
    logger.info(
        "%s: %s strategy trains %d of %d parameters", backbone.name, strategy, n_train, n_all
    )


def adalora_orth_reg(model: Any) -> torch.Tensor | None:
    """AdaLoRA's orthogonal regularisation of ``P`` and ``Q`` (as ``AdaLoraModel.forward`` adds
    it to a model's own loss), times its weight; ``None`` for other models."""
    from peft import PeftModel
    from peft.tuners.adalora import AdaLoraModel

    if not isinstance(model, PeftModel) or not isinstance(model.base_model, AdaLoraModel):
        return None
    tuner = model.base_model
    name = tuner.trainable_adapter_name
    weight = tuner.peft_config[name].orth_reg_weight
    if weight <= 0:
        return None
    terms = []
    for n, p in tuner.model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and name in n and p.requires_grad:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            eye = torch.eye(*cov.shape, dtype=cov.dtype, device=cov.device)
            terms.append(torch.linalg.matrix_norm(cov - eye))
    if not terms:
        return None
    return weight * torch.stack(terms).mean()


def _adapter_name(tuner: Any) -> str:
    name = getattr(tuner, "trainable_adapter_name", None)  # unset on a model loaded for inference
    if name is None:
        active = tuner.active_adapter
        name = active[0] if isinstance(active, list | tuple) else active
    return str(name)


def adalora_tuner(model: Any) -> Any | None:
    """The ``AdaLoraModel`` inside a PEFT model, or ``None``."""
    from peft import PeftModel
    from peft.tuners.adalora import AdaLoraModel

    if isinstance(model, PeftModel) and isinstance(model.base_model, AdaLoraModel):
        return model.base_model
    return None


def active_ranks(model: Any) -> int | None:
    """AdaLoRA's rank budget in use: the ranks its rank pattern keeps (all ``init_r`` ranks
    before the first allocation); ``None`` for other models."""
    tuner = adalora_tuner(model)
    if tuner is None:
        return None
    name = _adapter_name(tuner)
    config = tuner.peft_config[name]
    if config.rank_pattern:
        return int(sum(sum(bool(b) for b in v) for v in config.rank_pattern.values()))
    return int(sum(p.shape[0] for n, p in tuner.model.named_parameters() if f"lora_E.{name}" in n))


def sync_rank_pattern(model: Any) -> None:
    """Make AdaLoRA's rank pattern the ranks whose ``lora_E`` is not zero.

    The rank pattern saved with an adapter decides which ranks are kept; after the Trainer
    reloads the best checkpoint, the pattern in the config may be a later step's. Pruned
    ranks have ``lora_E == 0`` exactly, so the weights themselves say which ranks are in use.
    """
    tuner = adalora_tuner(model)
    if tuner is None:
        return
    name = _adapter_name(tuner)
    config = tuner.peft_config[name]
    if not config.rank_pattern:
        return  # no allocation ran: every rank is in use
    config.rank_pattern = {
        n: (p.detach() != 0).view(-1).tolist()
        for n, p in tuner.model.named_parameters()
        if f"lora_E.{name}" in n
    }
