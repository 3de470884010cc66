"""How far dynamic int8 quantisation moves the pretrained verbalizer's scores, by layer set.

Scores 40 reranking prompts (8 liked MovieLens titles, one candidate) with SmolLM2-135M's
zero-shot verbalizer in float32, then with int8 copies quantised per-tensor or per-channel, on
every linear layer or on subsets, and prints each copy's correlation with the float scores, its
largest difference and its time. Usage (from the repository root, after scripts/env.sh):

    python benchmarks/rerank/int8_agreement.py > benchmarks/rerank/results/int8_agreement.txt
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np
import torch
from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

import hybridrec as hr
from hybridrec.rerank.backbone import Backbone


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    titles = list(hr.load_dataset("ml-latest-small").items["title"])[:400]
    bb = Backbone.load("smollm2-135m", "verbalizer", device="cpu")
    texts = [
        f"The user liked: {', '.join(titles[i : i + 8])}.\nCandidate: {titles[200 + i]}\n"
        "Will the user like it? Answer:"
        for i in range(0, 120, 3)
    ]
    t0 = time.perf_counter()
    reference = bb.score_texts(texts)
    print(f"float32: {time.perf_counter() - t0:.1f} s, score range {np.ptp(reference):.3f}")
    linear = [n for n, m in bb.model.named_modules() if isinstance(m, torch.nn.Linear)]
    body = [n for n in linear if "layers." in n]
    variants = {
        "per-tensor, every linear layer": {torch.nn.Linear: default_dynamic_qconfig},
        "per-tensor, transformer blocks": {n: default_dynamic_qconfig for n in body},
        "per-channel, every linear layer": {torch.nn.Linear: per_channel_dynamic_qconfig},
        "per-channel, transformer blocks": {n: per_channel_dynamic_qconfig for n in body},
        "per-channel, blocks but down_proj": {
            n: per_channel_dynamic_qconfig for n in body if "down_proj" not in n
        },
        "per-channel, attention only": {
            n: per_channel_dynamic_qconfig for n in body if "self_attn" in n
        },
    }
    for label, spec in variants.items():
        model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(bb.model), spec, torch.qint8)
        q = Backbone(model, bb.tokenizer, bb.head, name=bb.name, device="cpu")
        t0 = time.perf_counter()
        scores = q.score_texts(texts)
        seconds = time.perf_counter() - t0
        r = np.corrcoef(reference, scores)[0, 1]
        diff = np.abs(reference - scores).max()
        print(f"{label}: r = {r:.3f}, largest difference {diff:.3f}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
