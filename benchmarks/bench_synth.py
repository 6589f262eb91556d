"""Synthesis speed on one core: samples/s and CPU-ms per sample, default recipe, Latin and Chinese.

Prints JSON. Rendering only (no encoding, no disk): the figure the pipeline multiplies by cores.
    python benchmarks/bench_synth.py [--count 1000] [--height 64] [--warmup 1000] [--baseline OTHER_CHECKOUT]
With --baseline, the same measurement runs on another checkout (e.g. `git archive REV | tar -x -C DIR`)
in a subprocess right after each language, and the JSON holds both side by side with their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from textsynth.config import SynthConfig  # noqa: E402

try:
    from textsynth.synth.synthesizer import Synthesizer  # noqa: E402
except ImportError:  # a --baseline checkout from before the synth/ package
    from textsynth.synth import Synthesizer  # noqa: E402


def measure(lang: str, count: int, height: int, warmup: int = 1000) -> dict:
    cfg = SynthConfig(seed=1).replace(**{"corpus.lang": lang, "render.height": height})
    syn = Synthesizer(cfg)
    for i in range(warmup):  # fills per-process caches (fonts per size, glyph advances, textures, decoded photos)
        syn.sample(10_000_000 + i)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        syn.sample(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"lang": lang, "samples": count, "height": height, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "samples_per_s": round(count / wall, 1), "samples_per_cpu_s": round(count / cpu, 1),
            "cpu_ms_per_sample": round(cpu / count * 1000, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=1000,
                    help="samples rendered before timing (each bundled photo is decoded once per process)")
    ap.add_argument("--baseline", help="another checkout's root, measured the same way for a side-by-side ratio")
    ap.add_argument("--lang", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figure claims
    except (AttributeError, OSError):
        pass
    if args.lang:  # one language, as the subprocess of a --baseline run
        print(json.dumps(measure(args.lang, args.count, args.height, args.warmup)))
        return
    results = []
    for lang in ("en", "zh", "mixed"):
        r = measure(lang, args.count, args.height, args.warmup)
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": os.path.abspath(args.baseline), "TEXTSYNTH_ASSETS": os.path.abspath(args.baseline)}
            out = subprocess.run([sys.executable, __file__, "--warmup", str(args.warmup), "--lang", lang, "--count", str(args.count),
                                  "--height", str(args.height)], env=env, capture_output=True, text=True, check=True)
            base = json.loads(out.stdout)
            r = {"lang": lang, "this": r, "baseline": base,
                 "ratio_samples_per_cpu_s": round(r["samples_per_cpu_s"] / base["samples_per_cpu_s"], 3)}
        results.append(r)
    print(json.dumps({"benchmark": "synth", "cores": 1, "baseline": args.baseline, "results": results}, indent=2))


if __name__ == "__main__":
    main()
