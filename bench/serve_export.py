"""ONNX side of bench/serve.ts: the teacher encoder of an ExtreMA checkpoint
(this project's .safetensors, config in its metadata) as an ONNX graph for
onnxruntime-node. The graph takes what the image decoder yields, uint8 pixels
[N, H, W, C], and does the rest of `extrema embed`'s preprocessing itself
(x / 255, then (x - mean) / std), so the Node server around it only decodes;
it answers the instance features [N, D]. The batch dimension is dynamic.

The encoder is the independent reference (test/oracle/extrema_ref.py) with
the explicit softmax attention, which every exporter handles. The script
checks onnxruntime (Python) against PyTorch on random pixels at two batch
sizes and prints JSON: versions, opset and the largest absolute difference.

usage: serve_export.py checkpoint.safetensors out.onnx threads
"""
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors import safe_open

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "oracle"))
import extrema_ref as ref  # noqa: E402

PREFIX = "momentum_encoder."
GRAY = ([0.5], [0.5])
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


class Served(nn.Module):
    """Pixels in, features out: the preprocessing travels with the weights."""

    def __init__(self, encoder, channels):
        super().__init__()
        self.encoder = encoder
        mean, std = GRAY if channels == 1 else IMAGENET
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, pixels):
        x = pixels.permute(0, 3, 1, 2).float().div(255)
        return self.encoder((x - self.mean) / self.std)[0]


def load_teacher(checkpoint):
    """(Served teacher in eval mode, model input size, channels) from our checkpoint."""
    with safe_open(checkpoint, "pt") as f:
        meta = f.metadata() or {}
        if "config" not in meta:
            sys.exit(f"{checkpoint}: not an ExtreMA .safetensors checkpoint (no config in its metadata)")
        cfg = json.loads(meta["config"])
        state = {k[len(PREFIX):]: f.get_tensor(k) for k in f.keys() if k.startswith(PREFIX)}
    e = cfg["encoder"]
    proj = [e["embedDim"]] + [cfg["projectorHiddenDim"]] * (cfg["projectorLayers"] - 1) + [cfg["projectorDim"]]
    encoder = ref.Encoder(e, proj, cfg.get("headNorm", "layer"))
    encoder.load_state_dict(state, strict=True)
    h, w = e["imgSize"]
    if h != w:
        sys.exit(f"{checkpoint}: the bench serves square inputs; this model takes {h}x{w}")
    return Served(encoder, e["inChans"]).eval(), h, e["inChans"]


def main():
    checkpoint, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    model, size, channels = load_teacher(checkpoint)
    example = torch.randint(0, 256, (2, size, size, channels), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (example,), out, input_names=["pixels"], output_names=["features"],
                                dynamic_shapes={"pixels": {0: batch}}, dynamo=True, external_data=False)
    opset = program.model.opset_imports.get("", None) if program is not None else None

    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(out, options, providers=["CPUExecutionProvider"])
    diff = 0.0
    for n in (1, 5):
        pixels = torch.randint(0, 256, (n, size, size, channels), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            want = model(pixels)
        got = torch.from_numpy(session.run(["features"], {"pixels": pixels.numpy()})[0])
        diff = max(diff, (got - want).abs().max().item())
    print(json.dumps({"torch": torch.__version__, "onnxruntime": ort.__version__, "opset": opset, "maxAbsDiff": diff,
                      "size": size, "channels": channels}))


if __name__ == "__main__":
    main()
