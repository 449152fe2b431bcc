"""Feature-extraction throughput of EfficientNet-Lite0 on this CPU: which settings pay?

    python benchmarks/throughput.py [--images 128] [--out throughput.json]

Measures images per second of the frozen backbone (up to the pooled features) for threads,
``channels_last``, ``inference_mode`` vs ``no_grad``, batch size and resolution, plus the cost
of decoding/resizing the cells and of ``tl.extract_features`` cold (empty cache) and warm
(cache hit). Each setting runs twice, interleaved, and the faster run is kept, because other
jobs on a shared machine make single timings noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import tlcourse as tl


def images_per_second(model, x, batch: int, grad_mode: str = "inference", channels_last: bool = False) -> float:
    """Forward ``x`` through the backbone to its pooled features in batches; return images/s."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    context = torch.inference_mode() if grad_mode == "inference" else torch.no_grad() if grad_mode == "no_grad" else nullcontext()
    start = time.perf_counter()
    with context:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            tl.forward_stages(model, xb, ["conv_head"], pool=True)
    seconds = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format)
    return len(x) / seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    model = tl.load_backbone()
    ds = tl.load_elpv()
    subset = torch.utils.data.Subset(ds, list(range(args.images)))
    results = {"images": args.images, "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "load_average_start": os.getloadavg()[0], "settings": []}

    inputs = {}
    for size in (128, 160, 224):
        start = time.perf_counter()
        transform = tl.preprocess(size)
        inputs[size] = torch.stack([transform(subset[i][0]) for i in range(args.images)])
        results[f"decode_resize_{size}_images_per_second"] = args.images / (time.perf_counter() - start)

    base = dict(size=160, threads=torch.get_num_threads(), batch=64, grad_mode="inference", channels_last=False)
    variants = [base] + [dict(base, **change) for change in (
        {"threads": 1}, {"channels_last": True}, {"grad_mode": "no_grad"}, {"grad_mode": "grad"},
        {"batch": 16}, {"batch": 128}, {"channels_last": True, "batch": 16}, {"size": 128}, {"size": 224})]
    with torch.inference_mode():
        tl.forward_stages(model, inputs[160][:8], ["conv_head"], pool=True)  # warm up the kernels
    best = [0.0] * len(variants)
    for _ in range(2):
        for i, v in enumerate(variants):
            with tl.torch_threads(v["threads"]):
                best[i] = max(best[i], images_per_second(model, inputs[v["size"]], v["batch"], v["grad_mode"], v["channels_last"]))
    for v, speed in zip(variants, best):
        results["settings"].append(dict(v, images_per_second=speed))
        print(f"{v}: {speed:6.1f} images/s", flush=True)

    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("TLCOURSE_CACHE")
        os.environ["TLCOURSE_CACHE"] = cache
        try:
            small = torch.utils.data.Subset(tl.load_elpv(transform=tl.preprocess(160)), list(range(args.images)))
            for label in ("cold", "warm"):
                start = time.perf_counter()
                tl.extract_features(model, small, progress=False)
                results[f"extract_features_{label}_images_per_second"] = args.images / (time.perf_counter() - start)
                print(f"tl.extract_features at 160 px, {label} cache: "
                      f"{results[f'extract_features_{label}_images_per_second']:.1f} images/s", flush=True)
        finally:
            if old is None:
                os.environ.pop("TLCOURSE_CACHE")
            else:
                os.environ["TLCOURSE_CACHE"] = old
    results["load_average_end"] = os.getloadavg()[0]
    for size in (128, 160, 224):
        print(f"decode + resize to {size} px: {results[f'decode_resize_{size}_images_per_second']:.0f} images/s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
