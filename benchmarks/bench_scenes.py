"""Benchmark: how long Scenes takes to generate (the issue asks 10,000 samples in a few seconds).

Measures, per torch thread count, the whole construction of 10,000 training scenes at the
default image size (median, min and max over repeats; wall clock and this process's CPU time,
which tells a loaded machine from a slow renderer), the same at other image sizes (fewer
repeats), the split between drawing the scenes and ray casting them, and the memory that the
stored tensors take.

    python benchmarks/bench_scenes.py [--repeats 5] [--size 10000] [--image-sizes 32 48 64]
                                      [--size-repeats 3] [--threads 1 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from mtlaug_lib.data.scenes import (
    DEFAULT_IMAGE_SIZE,
    Scenes,
    SceneSettings,
    draw_scenes,
    noise_keys,
    render_scenes,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import machine, record  # noqa: E402


def timings(fn, repeats: int) -> dict[str, float]:
    """Wall and CPU seconds of ``fn`` over ``repeats`` runs: median, min and max."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {
        "wall_s (median)": round(statistics.median(wall), 3),
        "wall_s (min)": round(min(wall), 3), "wall_s (max)": round(max(wall), 3),
        "cpu_s (median)": round(statistics.median(cpu), 3),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--size-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "scenes.json")
    args = parser.parse_args(argv)

    settings = SceneSettings()
    params = draw_scenes(args.size, torch.Generator().manual_seed(0), settings)
    keys = noise_keys(0, "train", args.size)
    threads_before = torch.get_num_threads()
    per_threads: dict[str, object] = {}
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            default = timings(lambda: Scenes("train", size=args.size), args.repeats)
            sizes = {
                str(s): timings(lambda s=s: Scenes("train", size=args.size, image_size=s),
                                args.size_repeats)
                for s in args.image_sizes
            }
            # The split: drawing the scenes' parameters against ray casting and shading them.
            draw = timings(lambda: draw_scenes(args.size, torch.Generator().manual_seed(0),
                                               settings), args.size_repeats)
            render = timings(lambda: render_scenes(params, DEFAULT_IMAGE_SIZE, settings.focal,
                                                   keys), args.size_repeats)
            per_threads[f"{threads} thread{'s' if threads > 1 else ''}"] = {
                f"scenes_{DEFAULT_IMAGE_SIZE}": default,
                "by_image_size": sizes,
                "draw_parameters": draw,
                "render": render,
            }
    finally:
        torch.set_num_threads(threads_before)

    memory = {}
    for s in args.image_sizes:
        sample = Scenes("train", size=2, image_size=s)
        memory[str(s)] = {"bytes_per_sample": sample.nbytes // 2,
                          "MiB": round(sample.nbytes / 2 * args.size / 2**20, 1)}
    result = {
        "benchmark": "Scenes generation",
        "size": args.size,
        "default_image_size": DEFAULT_IMAGE_SIZE,
        "repeats": args.repeats,
        "size_repeats": args.size_repeats,
        "timings": per_threads,
        "stored (images, semantic, depth, normals) by image size": memory,
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
