"""Fine-tuning a reranker backbone with transformers' ``Trainer``, and saving and loading it.

:func:`fine_tune` trains a :class:`~hybridrec.rerank.backbone.Backbone` on ``(text, label)``
pairs (the full prompt, 1 = the user likes the candidate): binary cross-entropy with logits on
the backbone's own score (its pooling on the last real token and its ``classifier`` or
``verbalizer`` head, :meth:`Backbone.forward`), AdamW with warm-up and linear decay, validation
AUC each epoch, the best epoch's weights kept, early stopping. The freezing strategy
(``full``, ``top``, ``lora``, ``adalora``, ``ia3``) is a field of :class:`TrainingConfig` (see
:mod:`hybridrec.rerank.peft_setup`).

Scaling out needs no change: run the same script under ``torchrun --nproc_per_node N`` or
``accelerate launch`` and the ``Trainer`` trains with distributed data parallelism (on CPUs
with the ``gloo`` backend). Mixed precision (bf16 where supported, else fp16) is used on
CUDA only. DeepSpeed and FSDP are not supported (checkpoints hold the trainable weights only).

:func:`save_fine_tuned` writes a folder (safetensors weights, the tokenizer, a manifest with
checksums); :func:`load_fine_tuned` restores a backbone that gives identical scores.

Example:
    >>> from hybridrec.rerank.backbone import Backbone
    >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0, device="cpu")
    >>> train = [("a good film", 1), ("a bad film", 0)] * 8
    >>> result = fine_tune(bb, train, train, TrainingConfig(strategy="lora", num_train_epochs=1))
    >>> sorted(result.history[-1])[:2]
    ['epoch', 'eval_auc']
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from hybridrec.errors import ModelFileError
from hybridrec.models import model_identity
from hybridrec.rerank import peft_setup
from hybridrec.rerank.backbone import DEFAULT_ANSWERS, Backbone

logger = logging.getLogger(__name__)

#: the ``kind`` of a saved fine-tuned reranker model's manifest
KIND = "rerank-fine-tuned"
TOKENIZER_DIR, MODEL_DIR, ADAPTER_DIR = "tokenizer", "model", "adapter"
_SAFE_WEIGHTS = "model.safetensors"


class TrainingConfig(BaseModel):
    """How to fine-tune a reranker backbone (every field checked; unknown keys refused).

    Attributes:
        strategy: ``full``, ``top``, ``lora``, ``adalora`` or ``ia3``.
        top_n: the blocks ``top`` trains.
        lora_r, lora_alpha, lora_dropout: LoRA's rank, scale and dropout (``alpha`` and
            ``dropout`` also AdaLoRA's).
        target_modules: the adapted layers (default per architecture: GPT-2 ``c_attn``, Llama
            ``q_proj``, ``v_proj``; (IA)^3: peft's defaults).
        adalora_init_r, adalora_target_r: AdaLoRA's initial and target average rank.
        adalora_tinit, adalora_tfinal, adalora_delta_t: steps before the budget starts to
            fall, steps at the final budget, steps between two allocations.
        adalora_orth_reg_weight: weight of AdaLoRA's orthogonal regularisation.
        learning_rate, weight_decay, warmup_ratio: AdamW and its linear schedule.
        batch_size: examples per device and step; ``eval_batch_size`` default the same.
        gradient_accumulation_steps: batches per optimiser step.
        num_train_epochs: epochs (at most; early stopping may end sooner).
        early_stopping_patience: epochs without a better validation AUC before stopping.
        max_grad_norm: gradient clipping.
        seed: seeds the Trainer (data order, dropout).
        mixed_precision: ``auto`` (bf16 or fp16 on CUDA, none on CPU), ``no``, ``fp16``,
            ``bf16`` (the last two only on CUDA).
        ddp_backend: ``gloo``, ``nccl``, ... for distributed runs (default: the Trainer's).
        progress: show the Trainer's progress bars.

    Example:
        >>> TrainingConfig(strategy="top", top_n=1).top_n
        1
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    strategy: Literal["full", "top", "lora", "adalora", "ia3"] = "lora"
    top_n: int = Field(1, ge=1)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] | None = None
    adalora_init_r: int = Field(12, ge=1)
    adalora_target_r: int = Field(4, ge=1)
    adalora_tinit: int = Field(0, ge=0)
    adalora_tfinal: int = Field(0, ge=0)
    adalora_delta_t: int = Field(1, ge=1)
    adalora_orth_reg_weight: float = Field(0.5, ge=0.0)
    learning_rate: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: float = Field(3.0, gt=0.0)
    early_stopping_patience: int = Field(2, ge=1)
    max_grad_norm: float = Field(1.0, ge=0.0)
    seed: int = 0
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    ddp_backend: str | None = None
    progress: bool = False

    def peft_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`hybridrec.rerank.peft_setup.peft_config`."""
        return {
            "r": self.lora_r,
            "alpha": self.lora_alpha,
            "dropout": self.lora_dropout,
            "target_modules": list(self.target_modules) if self.target_modules else None,
            "init_r": self.adalora_init_r,
            "target_r": self.adalora_target_r,
            "tinit": self.adalora_tinit,
            "tfinal": self.adalora_tfinal,
            "delta_t": self.adalora_delta_t,
            "orth_reg_weight": self.adalora_orth_reg_weight,
        }


@dataclass
class TrainingResult:
    """What :func:`fine_tune` returns.

    Attributes:
        backbone: the fine-tuned backbone (the one given, its model trained in place; for
            PEFT strategies ``backbone.model`` is now the PEFT model).
        strategy: the freezing strategy.
        history: one dict per epoch: ``epoch``, ``loss`` (training), and with validation data
            ``eval_loss`` and ``eval_auc``.
        best_auc: the best validation AUC (the kept weights'), or ``None``.
        best_epoch: the epoch of the kept weights (the last without validation data).
        train_samples_per_second: training throughput as the Trainer measured it.
        train_runtime: seconds of training.
        steps: optimiser steps taken.
        adalora_ranks: AdaLoRA's rank budget in use at the start and after each allocation
            (empty for other strategies).
    """

    backbone: Backbone
    strategy: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_auc: float | None = None
    best_epoch: float | None = None
    train_samples_per_second: float = 0.0
    train_runtime: float = 0.0
    steps: int = 0
    adalora_ranks: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- Trainer parts
class TextDataset(torch.utils.data.Dataset):
    """Tokenised texts and 0/1 labels, for the Trainer.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> ds = TextDataset(Backbone.load("tiny-gpt2", device="cpu"), [("a good film", 1)])
        >>> sorted(ds[0])
        ['attention_mask', 'input_ids', 'labels']
    """

    def __init__(self, backbone: Backbone, examples: Sequence[tuple[str, int]]) -> None:
        texts, labels = _check_examples(examples)
        ids = backbone.encode(texts)
        backbone.check_lengths(ids)
        self.ids = ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": [1] * len(self.ids[i]),
            "labels": float(self.labels[i]),
        }


def _check_examples(
    examples: Sequence[tuple[str, int]], what: str = "train"
) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for i, example in enumerate(examples):
        if not isinstance(example, tuple | list) or len(example) != 2:
            raise ValueError(f"{what} example {i}: expected (text, label), got {example!r:.80}")
        text, label = example
        if not isinstance(text, str) or not text:
            raise ValueError(f"{what} example {i}: the text must be a non-empty str")
        if isinstance(label, bool) or label not in (0, 1):
            raise ValueError(f"{what} example {i}: the label must be 0 or 1, got {label!r}")
        texts.append(text)
        labels.append(int(label))
    return texts, labels


class RerankTrainingModel(torch.nn.Module):
    """The module the Trainer trains: the backbone's model, with a loss on its scores.

    ``forward`` scores a padded batch through :meth:`Backbone.forward` (the backbone's own
    pooling and head) and, given labels, adds the binary cross-entropy with logits (plus
    AdaLoRA's orthogonal regularisation when the model has AdaLoRA adapters). The backbone's
    model is a sub-module, so DDP, ``.to()`` and ``state_dict`` see its parameters.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.model = backbone.model
        self._backbone = [backbone]  # a list: not a sub-module, not a parameter owner

    @property
    def backbone(self) -> Backbone:
        return self._backbone[0]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        scores = self.backbone.forward(input_ids, attention_mask)
        out = {"logits": scores}
        if labels is not None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                scores.float(), labels.to(scores.device).float()
            )
            reg = peft_setup.adalora_orth_reg(self.model) if self.training else None
            out = {"loss": loss + reg if reg is not None else loss, **out}
        return out


def compute_auc(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics`` of the Trainer: the ROC AUC of the scores.

    Example:
        >>> from transformers import EvalPrediction
        >>> compute_auc(EvalPrediction(np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1])))
        {'auc': 1.0}
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(eval_pred.predictions, dtype=np.float64).reshape(-1)
    labels = np.asarray(eval_pred.label_ids).reshape(-1)
    return {"auc": float(roc_auc_score(labels, scores))}


def _adalora_callback(model: Any) -> Any:
    from transformers import TrainerCallback

    class AdaLoraCallback(TrainerCallback):
        """Calls AdaLoRA's ``update_and_allocate`` after each optimiser step.

        ``on_optimizer_step`` runs after ``optimizer.step()`` and before ``model.zero_grad()``
        in the Trainer's loop (``on_step_end`` comes after ``zero_grad``, when the gradients
        AdaLoRA's importance scores need are gone). ``state.global_step`` there is the index of
        the step just taken (from 0), as AdaLoRA expects. The total step count is set from the
        Trainer's own ``max_steps`` when training begins.
        """

        def __init__(self) -> None:
            self.tuner = peft_setup.adalora_tuner(model)
            self.ranks: list[int] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            config = self.tuner.peft_config[self.tuner.trainable_adapter_name]
            if config.tinit + config.tfinal >= state.max_steps:
                raise ValueError(
                    f"AdaLoRA: adalora_tinit + adalora_tfinal ({config.tinit} + {config.tfinal}) "
                    f"must be below the training's {state.max_steps} optimiser steps"
                )
            self.tuner.rankallocator.set_total_step(state.max_steps)
            self.ranks.append(peft_setup.active_ranks(model))

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            before = self.tuner.peft_config[self.tuner.trainable_adapter_name].rank_pattern
            self.tuner.update_and_allocate(state.global_step)
            after = self.tuner.peft_config[self.tuner.trainable_adapter_name].rank_pattern
            if after is not None and after is not before:
                self.ranks.append(peft_setup.active_ranks(model))

    return AdaLoraCallback()


def _make_trainer_class() -> type:
    from safetensors.torch import load_file, save_file
    from transformers import Trainer

    class RerankTrainer(Trainer):
        """The Trainer, with checkpoints of the trainable weights only (safetensors).

        The model is not a ``PreTrainedModel``, so the Trainer would save its whole state dict
        with ``safetensors.save_file``, which refuses tied weights (GPT-2's LM head and
        embeddings); the frozen weights never change, so they are not saved at all.
        """

        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            if not self.args.should_save:
                return
            output_dir = output_dir or self.args.output_dir
            os.makedirs(output_dir, exist_ok=True)
            module = self.accelerator.unwrap_model(self.model)
            tensors = {
                n: p.detach().contiguous().cpu()
                for n, p in module.named_parameters()
                if p.requires_grad
            }
            save_file(tensors, os.path.join(output_dir, _SAFE_WEIGHTS), metadata={"format": "pt"})

        def _load_best_model(self) -> None:
            path = os.path.join(self.state.best_model_checkpoint, _SAFE_WEIGHTS)
            state = load_file(path, device="cpu")
            module = self.accelerator.unwrap_model(self.model)
            params = dict(module.named_parameters())
            unknown = sorted(set(state) - set(params))
            if unknown:
                raise RuntimeError(f"{path}: unknown weights {unknown[:5]}")
            with torch.no_grad():
                for name, tensor in state.items():
                    params[name].copy_(tensor.to(params[name].device, params[name].dtype))
            logger.info(
                "loaded the best checkpoint (%s = %s)",
                self.args.metric_for_best_model,
                self.state.best_metric,
            )

    return RerankTrainer


def _work_dir() -> tuple[Path, bool]:
    """The Trainer's output folder, one per run: a new temporary folder; in a distributed run,
    a name all processes of a node derive from the launcher's environment. Returns the folder
    and whether this process removes it (in a distributed run, local rank 0 only)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Path(tempfile.mkdtemp(prefix="hybridrec-train-")), True
    key = "|".join(
        os.environ.get(k, "")
        for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE")
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"hybridrec-train-{os.getuid()}-{digest}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder, os.environ.get("LOCAL_RANK", "0") == "0"


def _precision(config: TrainingConfig) -> dict[str, bool]:
    cuda = torch.cuda.is_available()
    mode = config.mixed_precision
    if mode in {"fp16", "bf16"} and not cuda:
        raise ValueError(f"mixed_precision={mode!r} needs CUDA; use 'auto' or 'no' on CPU")
    if mode == "auto":
        mode = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    return {"fp16": mode == "fp16", "bf16": mode == "bf16", "use_cpu": not cuda}


def _expected_steps(n: int, config: TrainingConfig) -> int:
    world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    batches = math.ceil(n / (config.batch_size * world))
    per_epoch = max(1, math.ceil(batches / config.gradient_accumulation_steps))
    return max(1, math.ceil(per_epoch * config.num_train_epochs))


def fine_tune(
    backbone: Backbone,
    train: Sequence[tuple[str, int]],
    valid: Sequence[tuple[str, int]] | None = None,
    config: TrainingConfig | None = None,
) -> TrainingResult:
    """Fine-tune a backbone on ``(text, label)`` examples with transformers' ``Trainer``.

    The backbone's model is trained in place (with a PEFT strategy it is first wrapped with
    adapters: ``backbone.model`` becomes the PEFT model). With validation data, the AUC is
    computed each epoch, the best epoch's weights are kept and training stops after
    ``early_stopping_patience`` epochs without improvement. The Trainer's output folder is a
    temporary folder, removed at the end.

    Args:
        backbone: a backbone from :meth:`Backbone.load` (``classifier`` or ``verbalizer``).
        train: ``(full prompt text, label 0/1)`` pairs.
        valid: the same, with both labels, or ``None``.
        config: the training settings (default :class:`TrainingConfig`).

    Returns:
        A :class:`TrainingResult`.

    Raises:
        ValueError: empty training data, a malformed example, validation data with a single
            label, a text longer than the model takes, or an invalid strategy setting.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0, device="cpu")
        >>> r = fine_tune(bb, [("good", 1), ("bad", 0)] * 4, None,
        ...               TrainingConfig(strategy="full", num_train_epochs=1))
        >>> r.steps
        1
    """
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        TrainingArguments,
    )

    config = config or TrainingConfig()
    if not train:
        raise ValueError("no training examples")
    train_set = TextDataset(backbone, train)
    valid_set = None
    if valid is not None:
        valid_set = TextDataset(backbone, valid)
        if len(set(valid_set.labels)) < 2:
            raise ValueError(
                "the validation examples must have both labels (0 and 1) for the AUC; pass "
                "valid=None to train without validation"
            )
    kwargs = config.peft_kwargs()
    if config.strategy == "adalora":
        kwargs["total_step"] = steps = _expected_steps(len(train_set), config)
        if config.adalora_tinit + config.adalora_tfinal >= steps:
            raise ValueError(
                f"AdaLoRA: adalora_tinit + adalora_tfinal ({config.adalora_tinit} + "
                f"{config.adalora_tfinal}) must be below the training's {steps} optimiser steps"
            )
    peft_setup.apply_strategy(backbone, config.strategy, top_n=config.top_n, **kwargs)

    work, owner = _work_dir()
    evaluate = valid_set is not None
    try:
        args = TrainingArguments(
            output_dir=str(work),
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,  # a float < 1: a fraction of the steps
            lr_scheduler_type="linear",
            optim="adamw_torch",
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            num_train_epochs=config.num_train_epochs,
            max_grad_norm=config.max_grad_norm,
            seed=config.seed,
            data_seed=config.seed,
            eval_strategy="epoch" if evaluate else "no",
            save_strategy="epoch" if evaluate else "no",
            logging_strategy="epoch",
            load_best_model_at_end=evaluate,
            metric_for_best_model="auc" if evaluate else None,
            greater_is_better=True,
            save_total_limit=2 if evaluate else None,
            save_only_model=True,
            save_on_each_node=True,  # each node's temporary folder holds the best checkpoint
            report_to=[],
            disable_tqdm=not config.progress,
            remove_unused_columns=False,
            label_names=["labels"],
            dataloader_pin_memory=torch.cuda.is_available(),
            ddp_backend=config.ddp_backend,
            **_precision(config),
        )
        wrapper = RerankTrainingModel(backbone)
        callbacks: list[Any] = []
        if evaluate:
            callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
        ada = _adalora_callback(backbone.model) if config.strategy == "adalora" else None
        if ada is not None:
            callbacks.append(ada)
        trainer = _make_trainer_class()(
            model=wrapper,
            args=args,
            train_dataset=train_set,
            eval_dataset=valid_set,
            data_collator=DataCollatorWithPadding(backbone.tokenizer),
            compute_metrics=compute_auc if evaluate else None,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # the library logs, it never prints
        start = time.perf_counter()
        output = trainer.train()
        logger.info("trained %s in %.1f s", backbone.name, time.perf_counter() - start)
        trainer.accelerator.wait_for_everyone()  # all have loaded the best weights
        state = trainer.state
    finally:
        if owner:
            shutil.rmtree(work, ignore_errors=True)

    peft_setup.sync_rank_pattern(backbone.model)
    backbone.model.eval()
    backbone.device = next(backbone.model.parameters()).device
    return TrainingResult(
        backbone=backbone,
        strategy=config.strategy,
        history=_history(state.log_history),
        best_auc=state.best_metric if evaluate else None,
        best_epoch=_best_epoch(state) if evaluate else float(state.epoch or 0.0),
        train_samples_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
        train_runtime=float(output.metrics.get("train_runtime", 0.0)),
        steps=int(state.global_step),
        adalora_ranks=list(ada.ranks) if ada is not None else [],
    )


def _history(log: list[dict[str, Any]]) -> list[dict[str, float]]:
    epochs: dict[float, dict[str, float]] = {}
    for entry in log:
        if "epoch" not in entry or "train_runtime" in entry:
            continue
        row = epochs.setdefault(round(float(entry["epoch"]), 4), {"epoch": float(entry["epoch"])})
        for key in ("loss", "eval_loss", "eval_auc"):
            if key in entry:
                row[key] = float(entry[key])
    return [epochs[k] for k in sorted(epochs)]


def _best_epoch(state: Any) -> float | None:
    for entry in state.log_history:
        if "eval_auc" in entry and entry["eval_auc"] == state.best_metric:
            return float(entry["epoch"])
    return None


# --------------------------------------------------------------------------- save / load
def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_fine_tuned(
    backbone: Backbone,
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    reference_only: bool = False,
) -> Path:
    """Save a fine-tuned backbone: weights (safetensors), tokenizer and a manifest.

    A full or ``top`` model is saved whole (``model/``, ``save_pretrained``); a PEFT model as
    its adapter and head only (``adapter/``), with the base model's name and identity, which
    :func:`load_fine_tuned` checks. With ``reference_only`` (an untrained verbalizer: nothing
    new to store) only the base model's name and identity are saved. Written atomically; an
    existing folder is replaced only with ``overwrite=True`` and only if it is a saved
    hybridrec model.

    Args:
        backbone: the backbone (after :func:`fine_tune`, or loaded).
        folder: where to save.
        overwrite: replace a model saved there before.
        extra: more JSON-serialisable fields for the manifest (a template name, a config).
        reference_only: save no weights (only for an untrained ``verbalizer`` backbone).

    Returns:
        The folder's path.

    Raises:
        OutputPathError: the folder must not be written.

    Example:
        >>> import tempfile
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0, device="cpu")
        >>> path = save_fine_tuned(bb, tempfile.mkdtemp() + "/reranker")
        >>> load_fine_tuned(path, device="cpu").head
        'classifier'
    """
    from hybridrec.persistence import atomic_directory, library_versions, write_manifest

    peft = _is_peft(backbone.model)
    if reference_only and (peft or backbone.head != "verbalizer"):
        raise ValueError("reference_only is for an untrained verbalizer backbone")
    manifest: dict[str, Any] = {
        "kind": KIND,
        "head": backbone.head,
        "answers": list(backbone.answers),
        "peft": peft,
        "reference_only": reference_only,
        "model_class": type(peft_setup._base(backbone.model)).__name__,
        "base_name": backbone.name,
        "base_identity": backbone.identity,
        "versions": library_versions("torch", "transformers", "peft", "safetensors"),
        **(extra or {}),
    }
    if peft:
        adapter = backbone.model.active_adapter
        manifest["peft_type"] = str(backbone.model.peft_config[adapter].peft_type.value)
    with atomic_directory(folder, overwrite=overwrite) as tmp:
        backbone.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        if reference_only:
            pass
        elif peft:
            backbone.model.save_pretrained(str(tmp / ADAPTER_DIR), safe_serialization=True)
            (tmp / ADAPTER_DIR / "README.md").unlink(missing_ok=True)  # a generated model card
        else:
            backbone.model.save_pretrained(str(tmp / MODEL_DIR), safe_serialization=True)
        write_manifest(tmp, manifest)
    return Path(os.path.abspath(os.path.expanduser(os.fspath(folder))))


def load_fine_tuned(
    folder: str | os.PathLike[str],
    *,
    base: str | None = None,
    device: str | torch.device | None = None,
) -> Backbone:
    """Load a backbone saved by :func:`save_fine_tuned`; it gives the saved model's scores.

    Every file is checked against the manifest's checksums first. A PEFT adapter is put on its
    base model, named in the manifest (or by ``base``, e.g. after moving the base's folder),
    whose identity must be the recorded one.

    Args:
        folder: the saved folder.
        base: where the base model is now (PEFT only); default the recorded name.
        device: where to run; default :func:`~hybridrec.rerank.backbone.default_device`.

    Returns:
        The backbone. A whole model's backbone is named by ``folder``; an adapter's by its
        base model (so it can be saved again).

    Raises:
        ModelFileError: a missing, damaged or changed file, a folder of another kind, or a base
            model that is not the one the adapter was trained on.

    Example:
        >>> # bb = load_fine_tuned("models/reranker"); bb.score_texts(["..."])
    """
    from hybridrec.persistence import read_manifest, reading

    folder = Path(folder)
    with reading(folder):
        manifest = read_manifest(folder)
        if manifest.get("kind") != KIND:
            raise ModelFileError(
                f"{folder}: not a fine-tuned reranker model (kind {manifest.get('kind')!r})"
            )
        head = manifest.get("head")
        answers = tuple(manifest.get("answers") or DEFAULT_ANSWERS)
        if manifest.get("peft") or manifest.get("reference_only"):
            return _load_adapter(folder, manifest, head, answers, base, device)
        return _load_whole(folder, head, answers, device)


def _model_error(folder: Path, what: str, err: BaseException) -> ModelFileError:
    return ModelFileError(f"{folder}: cannot load the {what} ({type(err).__name__}: {err})")


def _load_whole(folder: Path, head: str, answers: tuple[str, ...], device: Any) -> Backbone:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    loader = AutoModelForSequenceClassification if head == "classifier" else AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR))
        model = loader.from_pretrained(str(folder / MODEL_DIR))
    except Exception as err:  # safetensors, JSON, shape errors: all mean a bad file
        raise _model_error(folder, "model", err) from err
    return Backbone(model, tokenizer, head, name=str(folder), answers=answers, device=device)


def _load_adapter(
    folder: Path,
    manifest: dict[str, Any],
    head: str,
    answers: tuple[str, ...],
    base: str | None,
    device: Any,
) -> Backbone:
    from peft import PeftModel
    from transformers import AutoTokenizer

    name = base or manifest.get("base_name")
    recorded = manifest.get("base_identity")
    if not isinstance(name, str) or not isinstance(recorded, str):
        raise ModelFileError(f"{folder}: the manifest names no base model")
    identity = model_identity(name, "causal-lm")
    if identity != recorded:
        raise ModelFileError(
            f"{folder}: the adapter was trained on the base model {recorded!r}, but "
            f"{name!r} is {identity!r}; load it with the base model it was trained on "
            f"(base=...)"
        )
    try:
        backbone = Backbone.load(name, head, answers=answers, device="cpu")  # type: ignore[arg-type]
        tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR))
        with warnings.catch_warnings():
            # AdaLoRA's rank pattern (ranks kept per lora_E) is read by peft's check as LoRA's
            # (ranks per module) and reported as unmatched; it is applied all the same
            warnings.filterwarnings("ignore", message="The following rank_pattern keys")
            model = (
                backbone.model
                if manifest.get("reference_only")
                else PeftModel.from_pretrained(backbone.model, str(folder / ADAPTER_DIR))
            )
    except ModelFileError:
        raise
    except Exception as err:
        raise _model_error(folder, "adapter", err) from err
    return Backbone(model, tokenizer, head, name=name, answers=answers, device=device)  # type: ignore[arg-type]
