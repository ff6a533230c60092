"""Does the embedded model hear voices it was never trained on? WER, punctuation, latency and end of turn on
speech held out from training by sentence, by voice and by engine.

    python bench/voices.py [--model M] [--corpus corpus] [--limit N] [--out FILE]

Corpora (`dsm-lab synth`, `make corpus`; the model trains on corpus/train, seed 1, and corpus/train-shuffle,
seed 6, see the model card):
  corpus/val                        --n 300 --seed 2 --engines espeak,festival,piper
                                    --exclude-voice en+f3 --exclude-voice festival:ked   (thresholds picked here)
  corpus/test-grammar               --n 400 --seed 3, same voices as training, --sentences grammar
  corpus/test-shuffle-heldout-voices --n 300 --seed 4 --voice en+f3 --voice festival:ked --sentences shuffle
  corpus/test-heldout-engine        --n 300 --seed 5 --engines freetts --sentences grammar
  corpus/test-shuffle               --n 200 --seed 7, same voices as training, --sentences shuffle
                                    (no target: it tells word order apart from voice in the row above)
Every test item that shares a sentence with a training folder (corpus/train*) is dropped first (the table
prints how many), so each number is on sentences absent from training. Writes bench/results/voices.json and voices.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab import evaluate, metrics  # noqa: E402
from lab.checkpoint import read_config  # noqa: E402
from lab.train import sentence_key, training_sentences  # noqa: E402

SETS = [
    ("test-grammar", "new grammar sentences; training engines (espeak, festival, piper) and voices",
     "sentences", 0.04),
    ("test-shuffle-heldout-voices", "random word orders of the vocabulary; held-out voices en+f3, festival:ked",
     "sentences, voices", 0.25),
    ("test-heldout-engine", "grammar sentences; held-out engine FreeTTS (kevin16), never trained on",
     "sentences, engine", 0.15),
    ("test-shuffle", "random word orders of the vocabulary; training engines and voices", "sentences", None),
]
HEAD_S = 2.0
LATENCY_RANGE_S = (0.3, 1.5)


def held_out_paths(folder: Path, train_sentences: set[str], limit: int | None):
    kept, dropped = [], 0
    for p in sorted(folder.glob("*.json")):
        meta = json.loads(p.read_text())
        if any(sentence_key(s) in train_sentences for s in meta["sentences"]):
            dropped += 1
        else:
            kept.append(p)
    kept = kept[:limit]
    overlap = sum(sentence_key(s) in train_sentences for p in kept for s in json.loads(p.read_text())["sentences"])
    return kept, dropped, overlap


def punctuation(results) -> dict:
    total = {"q_tp": 0, "q_fp": 0, "q_fn": 0, "matched": 0, "same_case": 0, "sq_tp": 0, "sq_fp": 0, "sq_fn": 0}
    for r in results:
        ref, hyp = [w.get("written", w["text"]) for w in r.ref_words], [w.text for w in r.words]
        c = {**metrics.punctuation_counts(ref, hyp), **metrics.sentence_question_counts(ref, hyp)}
        total = {k: total[k] + c[k] for k in total}
    sentences = {k: total[k] for k in ("sq_tp", "sq_fp", "sq_fn")}
    return {"question_f1": metrics.question_f1(total), "question_f1_sentences": metrics.question_f1(sentences),
            "case_accuracy": total["same_case"] / max(1, total["matched"]), **total}


def end_of_turn(results) -> dict:
    sem = evaluate.sweep_semantic(results, HEAD_S)
    sil = evaluate.sweep_silence(results)
    cmp = evaluate.compare_tradeoffs(sem.rename(columns={"threshold": "value"}), sil.rename(
        columns={"min_silence_s": "value"}), latency_range_s=LATENCY_RANGE_S, max_miss=0.05)
    return {"settings": len(cmp), "passing": int(cmp.passes.sum()), "rows": cmp.to_dict("records")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None, help="result file (default bench/results/voices.json, whose tables "
                    "the docs show; another name for a model that is not shipped, e.g. one training stage)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = Path(args.corpus)
    model = lab.load(args.model)
    weights = sum(f.stat().st_size for f in Path(model.info.source).glob("*.safetensors")) \
        if Path(str(model.info.source)).is_dir() else None
    ten_s = np.random.default_rng(0).standard_normal(10 * 24_000).astype(np.float32) * 0.01
    model.transcribe((ten_s, 24_000))
    best = min(_timed(lambda: model.transcribe((ten_s, 24_000))) for _ in range(3))
    out = {"model": Path(str(model.info.source)).name, "delay_frames": model.cfg.delay_frames,
           "n_params": model.n_params,
           "head_s": HEAD_S,
           "weights_mb": None if weights is None else round(weights / 1e6, 2),
           "real_time_factor_1_thread": round(10.0 / best, 1), "sets": []}
    if Path(str(model.info.source)).is_dir():  # how it was trained: steps, minutes, stages
        out["training"] = read_config(Path(str(model.info.source))).get("training")

    train_dirs = sorted(d for d in corpus.glob("train*") if d.is_dir())
    if not train_dirs:
        raise SystemExit(f"no training corpus in {corpus} (train*): the overlap cannot be checked")
    out["training_corpora"] = [d.name for d in train_dirs]
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    train = training_sentences(corpus)
    print(f"training sentences from {', '.join(d.name for d in train_dirs)}: {len(train)}")
    for name, what, held, target in SETS:
        if not (corpus / name).is_dir():
            raise SystemExit(f"missing test set {corpus / name}: make corpus")
        paths, dropped, overlap = held_out_paths(corpus / name, train, args.limit)
        t0 = time.perf_counter()
        results = evaluate.run_items(model, paths)
        row = {"set": name, "what": what, "held_out": held, "dropped_for_overlap": dropped, "overlap": overlap,
               **evaluate.transcription_summary(results), **punctuation(results), "wer_target": target}
        if name in ("test-grammar", "test-heldout-engine"):
            row["end_of_turn"] = end_of_turn(results)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out["sets"].append(row)
        print(f"{name}: {row['items']} items ({dropped} dropped: a sentence also in training), overlap {overlap}, "
              f"WER {100 * row['wer']:.1f} %, ?-F1 {row['question_f1']:.2f}", flush=True)

    results = Path(__file__).resolve().parent / "results"
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=_plain) + "\n")
        return
    (results / "voices.json").write_text(json.dumps(out, indent=1, default=_plain) + "\n")
    (results / "voices.md").write_text(report())
    print(report())


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _plain(x):
    return x.item() if hasattr(x, "item") else str(x)


def report() -> str:
    from report import voices_table, voices_turns_table  # bench/report.py renders the tables everywhere

    return (f"# Voices never heard in training\n\n{voices_table()}\n\n## End of turn: the {HEAD_S:g} s head "
            f"against a silence timer\n\nFor each silence-timer setting with median latency in {LATENCY_RANGE_S[0]}-"
            f"{LATENCY_RANGE_S[1]} s: the head threshold with the fewest early cuts among those no slower at the "
            f"median (misses <= 5 %). Target: at most half the timer's early cuts.\n\n{voices_turns_table()}\n")


if __name__ == "__main__":
    main()
