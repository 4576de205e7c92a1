"""Independent kNN classifier written from the definition (InstDisc / DINO
monitor), in NumPy float64 with a plain loop over queries: L2-normalise bank
and queries, cosine similarity of a query to every bank feature, the k most
similar vote for their labels with weight exp(sim / T), prediction = the class
with the largest total (first such class on ties).

spec: {"num_classes": int, "cases": [{"k": int, "temperature": float}, ...]}
inputs: bank [N, D], bank_labels [N] int64, queries [Q, D]
outputs, for case i: pred_i [Q] int64, margin_i [Q] float64 (relative gap
between the two largest vote totals, to tell rounding-level ties from real
disagreements)
"""
import json
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

spec = json.load(open(sys.argv[1]))
x = load_file(sys.argv[2])
bank = x["bank"].double().numpy()
labels = x["bank_labels"].numpy()
queries = x["queries"].double().numpy()
num_classes = int(spec["num_classes"])

bank = bank / np.maximum(np.sqrt((bank * bank).sum(axis=1, keepdims=True)), 1e-12)
queries = queries / np.maximum(np.sqrt((queries * queries).sum(axis=1, keepdims=True)), 1e-12)


def classify(k, temperature):
    k = min(k, bank.shape[0])
    pred = np.zeros(queries.shape[0], dtype=np.int64)
    margin = np.zeros(queries.shape[0], dtype=np.float64)
    for i, q in enumerate(queries):
        sims = bank @ q
        nearest = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(num_classes, dtype=np.float64)
        np.add.at(votes, labels[nearest], np.exp(sims[nearest] / temperature))
        pred[i] = int(np.argmax(votes))  # first maximum on ties
        ordered = np.sort(votes)[::-1]
        margin[i] = (ordered[0] - ordered[1]) / ordered[0] if num_classes > 1 else 1.0
    return pred, margin


out = {}
for n, case in enumerate(spec["cases"]):
    pred, margin = classify(int(case["k"]), float(case["temperature"]))
    out[f"pred_{n}"] = torch.from_numpy(pred)
    out[f"margin_{n}"] = torch.from_numpy(margin)
save_file(out, sys.argv[3])
