"""Python side of bench/serve.ts: the minimal FastAPI + PyTorch embedding
service a Python team would write first, to load-test beside `extrema serve`.
One uvicorn worker, one model, POST /v1/embed with a raw image body answering
{"features": [[...]], "width": D}, GET /healthz. Each request runs its own
forward pass inline in the async handler (no batching; requests queue on the
event loop), under torch.no_grad with PyTorch's fused attention.

Preprocessing as `extrema embed`: decode, flatten alpha onto white, then for
a one-channel model the same integer gray formula as lib/data (299/587/114,
rounded), x / 255, (x - mean) / std. Images must already be the model's size
(the bench sends 28 px PNGs); others get a 400 rather than a resize that
would differ from sharp's.

usage: serve_fastapi.py checkpoint.safetensors port threads
"""
import io
import os
import sys

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_export  # noqa: E402

serve_export.ref.FUSED_ATTENTION = True

checkpoint, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model, size, channels = serve_export.load_teacher(checkpoint)
width = model.encoder.norm.weight.shape[0]
with torch.no_grad():
    model(torch.zeros(1, size, size, channels, dtype=torch.uint8))  # warm-up

app = FastAPI()


def pixels(body):
    img = Image.open(io.BytesIO(body))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    if img.size != (size, size):
        raise ValueError(f"expected a {size}x{size} image, got {img.size[0]}x{img.size[1]}")
    if channels == 1 and img.mode == "L":
        return np.asarray(img, dtype=np.uint8)[:, :, None]
    rgb = np.asarray(img.convert("RGB"), dtype=np.int32)
    if channels == 3:
        return rgb.astype(np.uint8)
    gray = (rgb[:, :, 0] * 299 + rgb[:, :, 1] * 587 + rgb[:, :, 2] * 114 + 500) // 1000
    return gray.astype(np.uint8)[:, :, None]


@app.get("/healthz")
async def healthz():
    return Response("ok")


@app.post("/v1/embed")
async def embed(request: Request):
    body = await request.body()
    try:
        x = torch.from_numpy(pixels(body).copy()).unsqueeze(0)
    except Exception as e:  # noqa: BLE001 - any decode failure is the client's
        return JSONResponse({"error": {"code": "bad_image", "message": str(e)}}, status_code=400)
    with torch.no_grad():
        f = model(x)
    return {"features": f.tolist(), "width": width}


print(f"listening on http://127.0.0.1:{port} (fastapi, {width} features)", file=sys.stderr, flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)
