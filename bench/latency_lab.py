"""The latency lab over a corpus: each item replayed as if it arrived in real time (lab.latency), one stream,
one thread. Per word: emission latency in stream time and on the simulated wall clock; per turn: end-of-turn
decision -> final word, without flush, with `Streamer.flush()` and with Unmute's variant, for a decision at
the reference end of the turn and for the model's own EndOfTurn; the distribution of step compute time; the
real-time factor.

    python bench/latency_lab.py [--model M] [--dir corpus/test] [--limit N] [--chunk-ms 80]

Writes bench/results/latency_lab.md (summary tables) and bench/results/latency_turns.csv (one row per turn,
decision and variant).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lab import benchmarks, latency, metrics  # noqa: E402


def table(df, floatfmt=".3f") -> str:
    return benchmarks.markdown_table(df, floatfmt)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--dir", default=str(ROOT / "corpus" / "test-grammar"))
    p.add_argument("--train", default=str(ROOT / "corpus"),
                   help="corpus root: items sharing a sentence with its training folders (train*) are dropped")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--chunk-ms", type=float, default=80.0, help="how the audio arrives (80 ms: one frame)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, which = benchmarks.load_model(args.model)
    from lab.train import training_sentences

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from voices import held_out_paths

    train = training_sentences(args.train)
    paths, dropped, _ = held_out_paths(Path(args.dir), train, args.limit)
    print(f"{dropped} items dropped: a sentence also in {args.train}", file=sys.stderr)
    if not paths:
        raise SystemExit(f"no items in {args.dir}")
    t0 = time.perf_counter()
    res = latency.run_items(model, paths, chunk_s=args.chunk_ms / 1e3, progress=True)
    elapsed = time.perf_counter() - t0

    D = model.cfg.delay_frames
    corpus = Path(args.dir).resolve()
    corpus = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    words, items = res["words"], res["items"]
    lat = {name: metrics.percentiles(words[col], qs=(50, 90, 99)) | {"max": float(words[col].max())}
           for name, col in (("stream time (model only)", "latency_stream_s"), ("wall clock (with compute)",
                                                                                "latency_s"))}
    word_rows = [{"clock": k, **v} for k, v in lat.items()]
    dist = latency.step_distribution(res["steps"])
    summary = latency.summary(res, D)
    machine = benchmarks.machine()
    import pandas as pd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res["turns"].to_csv(out / "latency_turns.csv", index=False)
    text = [
        "# Latency lab: where the milliseconds go",
        "",
        f"Model: {which}; D = {D} frames ({D * 80} ms). Corpus `{corpus}`: {len(items)} items, "
        f"{len(words)} matched words. Audio arrives in {args.chunk_ms:g} ms chunks; one stream, one thread.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}. "
        f"Run time {elapsed:.0f} s. Command: `python bench/latency_lab.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "## Per-word emission latency (emitted - reference word end), seconds",
        "",
        table(pd.DataFrame(word_rows)),
        "",
        "## Step compute time (ms) and real-time factor",
        "",
        table(pd.DataFrame([{**dist, "rtf_mean": items.rtf.mean(), "rtf_offline_mean": items.rtf_offline.mean(),
                             "max_lag_s": items.lag_s.max()}]), ".2f"),
        "",
        "## Flush: end-of-turn decision -> the turn's final word delivered (seconds)",
        "",
        "decision `reference`: at the reference end of the turn (a perfect VAD); `model`: the stream's own "
        "EndOfTurn. variant `none`: keep streaming in real time; `flush`: Streamer.flush(); `unmute`: "
        f"{latency.unmute_frames(model)} frames of zeros through feed(). floor = (D + 1) x median step; "
        "wait = D x 80 ms. A negative latency: the word was out before the decision.",
        "",
        table(summary),
        "",
    ]
    (out / "latency_lab.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
