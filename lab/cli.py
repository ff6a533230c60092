"""The `dsm-lab` command. Each subcommand is a thin door to a function of `lab`; `--json` prints one JSON
object a line, for pipes."""

from __future__ import annotations

import argparse
import json
import sys

from lab.extras import MissingExtra


def _print_json(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def cmd_transcribe(args):
    import lab
    from lab.events import EndOfTurn, Word

    model = lab.load(args.model, alignment=args.alignment)
    t = model.transcribe(args.file)
    events = sorted([*t.words, *t.end_of_turns], key=lambda e: e.emitted_s if isinstance(e, Word) else e.time_s)
    for e in events:
        if isinstance(e, Word):
            if args.json:
                _print_json({"type": "word", "text": e.text, "start_s": e.start_s, "end_s": e.end_s,
                             "emitted_s": e.emitted_s})
            else:
                end = "       ?" if e.end_s is None else f"{e.end_s:8.2f}"  # no EPAD came after it
                print(f"{e.start_s:8.2f} {end}  {e.text}   (emitted at {e.emitted_s:.2f} s)")
        elif isinstance(e, EndOfTurn):
            if args.json:
                _print_json({"type": "end_of_turn", "time_s": e.time_s, "p": round(e.p, 4),
                             "policy": e.policy})
            else:
                print(f"{e.time_s:8.2f}           -- end of turn (p={e.p:.2f}, {e.policy})")
    if args.json:
        _print_json({"type": "transcript", "text": t.text})
    else:
        print(t.text)


def cmd_synth(args):
    from pathlib import Path

    from lab.synth import generate_corpus
    from lab.synth.corpus import resolve_voices
    from lab.synth.engines import EngineUnavailable

    exclude = tuple(args.exclude_voice or ())
    try:
        voices = resolve_voices(args.engines, args.voice)
    except (ValueError, EngineUnavailable) as e:
        raise SystemExit(f"dsm-lab synth: error: {e}") from None
    paths = generate_corpus(Path(args.out), args.n, args.seed, voices=voices, exclude_voices=exclude,
                            workers=args.workers, progress=not args.json, sentences=args.sentences)
    if args.json:
        _print_json({"items": len(paths), "out": str(args.out), "seed": args.seed})
    else:
        print(f"wrote {len(paths)} items to {args.out}")


def cmd_train(args):
    from dataclasses import fields

    from lab.train import TrainConfig, train

    known = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if "holdout" in overrides:
        overrides["holdout"] = tuple(overrides["holdout"])
    overrides["corpus"], *more = args.corpus
    overrides["more_corpora"] = tuple(more)
    train(TrainConfig(**overrides), resume=args.resume)


def cmd_export(args):
    """A trained model folder -> a folder to ship: weights cast (e.g. fp16, half the size), the training
    record of the source config kept."""
    from pathlib import Path

    import torch

    import lab
    from lab.checkpoint import read_config

    dtype = getattr(torch, args.weights_dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"--weights-dtype {args.weights_dtype!r} is not a torch floating-point dtype")
    source = lab.checkpoint.resolve(args.src)
    kept = {k: v for k, v in read_config(source).items() if k not in ("format", "config", "weights", "tokenizer")}
    out = lab.save(lab.load(source), Path(args.out), extra=kept, weights_dtype=dtype)
    size = (out / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {out} ({args.weights_dtype} weights, {size:.1f} MiB)")


def cmd_tts_train(args):
    from lab.checkpoint import default_model_dir
    from lab.tts_train import train_tts

    tokenizer = args.tokenizer or default_model_dir() / "tokenizer.model"
    train_tts(args.out, tokenizer, minutes=args.minutes, n_sentences=args.sentences, seed=args.seed,
              threads=args.threads)


def cmd_say(args):
    """The toy text-to-speech model speaks; the speech-to-text model may listen (the loop of notebook 06)."""
    import soundfile as sf

    from lab import tts

    model = tts.load(args.model)
    audio, out = model.speak(args.text)
    sf.write(args.out, audio, tts.SAMPLE_RATE)
    print(f"wrote {args.out} ({len(audio) / tts.SAMPLE_RATE:.2f} s; words start at steps {out['word_start_steps']})")
    if args.transcribe:
        import lab

        print(lab.load(args.stt).transcribe((audio, tts.SAMPLE_RATE)).text)


def cmd_eval(args):
    import lab
    from lab import evaluate

    model = lab.load(args.model)
    results = evaluate.run_items(model, args.dir, limit=args.limit, progress=not args.json)
    summary = evaluate.transcription_summary(results)
    rows = [dict(summary, kind="transcription")]
    for h in model.cfg.eot_horizons_s:
        if h not in (1.0, 2.0):
            continue
        sweep = evaluate.sweep_semantic(results, h)
        th = args.threshold if args.threshold is not None else evaluate.pick_threshold(sweep)
        chosen = sweep.iloc[(sweep.threshold - th).abs().argsort().iloc[0]].to_dict()
        base = evaluate.matched_silence_baseline(results, chosen["latency_p50_s"])
        rows.append({"kind": "end_of_turn", **chosen, "baseline_min_silence_s": base["min_silence_s"],
                     "baseline_early_cut_rate": base["early_cut_rate"],
                     "baseline_latency_p50_s": base["latency_p50_s"]})
    for row in rows:
        if args.json:
            _print_json({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        else:
            print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def cmd_turns(args):
    if args.protocol == "eot-bench":
        from lab.eotbench import eotbench_cli

        return eotbench_cli(args)
    from lab.evaluate import turns_cli

    return turns_cli(args)


def cmd_check(args):
    from lab.items.check import check_cli

    return check_cli(args)


def cmd_import(args):
    from lab.items.imports import import_cli

    return import_cli(args)


def cmd_export_labels(args):
    from lab.items.imports import export_cli

    return export_cli(args)


def cmd_prelabel(args):
    from lab.prelabel import prelabel_cli

    return prelabel_cli(args)


def cmd_probes(args):
    from lab.probes import probes_cli

    return probes_cli(args)


def cmd_bench(args):
    from lab.benchmarks import run_cli

    return run_cli(args)


def cmd_serve(args):
    from lab.serve import run_cli

    return run_cli(args)


def cmd_download(args):
    from lab.hub import run_cli

    return run_cli(args)


def cmd_notebooks(args):
    from lab.course import copy_notebooks

    for path in copy_notebooks(args.dir, overwrite=args.overwrite):
        print(path)


def cmd_lab(args):
    from lab.course import open_lab

    return open_lab(args.dir)


def build_parser() -> argparse.ArgumentParser:
    from lab import __version__
    from lab.course import DEFAULT_DIR

    p = argparse.ArgumentParser(prog="dsm-lab", description="Delayed-streams modeling workbench")
    p.add_argument("--version", action="version", version=f"dsm-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="stream a sound file through a model: words, timestamps, turns")
    t.add_argument("file")
    t.add_argument("--model", default=None, help="folder or Hugging Face repo id (default: embedded)")
    t.add_argument("--alignment", default="training", choices=["training", "scripts"])
    t.add_argument("--json", action="store_true", help="one JSON object a line")
    t.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("synth", help="make a synthetic corpus of turns with exact word timings (several engines)")
    s.add_argument("--n", type=int, required=True, help="number of items")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--engines", default=None,
                   help="comma-separated engines whose voices to use: espeak,festival,piper (default: espeak's "
                        "voices); freetts is the held-out engine, flite is refused")
    s.add_argument("--voice", action="append", help="only this voice (repeatable): en+f3, festival:slt, piper:joe")
    s.add_argument("--exclude-voice", action="append", help="leave this voice out (repeatable)")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--sentences", choices=["grammar", "swap", "shuffle"], default=None,
                   help="one kind of sentence only, for test sets (default: the grammar/swap/shuffle mix)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_synth)

    tr = sub.add_parser("train", help="train a DSM model on a synth corpus (CPU)")
    tr.add_argument("--corpus", required=True, action="append",
                    help="corpus folder (repeatable: several folders are trained on together)")
    tr.add_argument("--init-from", dest="init_from", default=None,
                    help="continue from this model folder or name (its weights, architecture, tokenizer): "
                         "a new training stage")
    tr.add_argument("--out", required=True, help="run folder; the model lands in OUT/model")
    for name, kind in [("delay_frames", int), ("d_model", int), ("num_layers", int), ("num_heads", int),
                       ("ffn_hidden", int), ("vocab_size", int), ("batch_size", int), ("lr", float),
                       ("max_steps", int), ("minutes", float), ("seed", int), ("name", str),
                       ("threads", int), ("reload_every_s", float)]:
        tr.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    tr.add_argument("--holdout", action="append", default=None,
                    help="a val/test corpus folder: training items sharing a sentence with it are left out "
                         "(repeatable)")
    tr.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                    help="no lab.augment (speed, rooms, microphones, babble, masks): gain and white noise only")
    tr.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default=None,
                    help="bfloat16: linear layers under bf16 autocast (about 1.5x the steps on a CPU with AMX or "
                         "AVX-512 BF16); auto (default): bfloat16 where the machine has it, else float32")
    tr.add_argument("--change-delay", dest="change_delay", action="store_true", default=None,
                    help="with --init-from: train this stage at --delay-frames although the starting model has "
                         "another delay (the weights fit any delay; the text targets move)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    tr.set_defaults(func=cmd_train)

    x = sub.add_parser("export", help="copy a trained model folder to ship it, weights cast (fp16 by default)")
    x.add_argument("src", help="model folder (e.g. runs/NAME/model) or name")
    x.add_argument("out")
    x.add_argument("--weights-dtype", default="float16")
    x.set_defaults(func=cmd_export)

    tt = sub.add_parser("tts-train", help="train the toy text-to-speech model (the other direction; CPU)")
    tt.add_argument("--out", required=True, help="run folder; the model lands in OUT/model")
    tt.add_argument("--minutes", type=float, default=25.0)
    tt.add_argument("--sentences", type=int, default=2500, help="distinct grammar sentences spoken for training")
    tt.add_argument("--seed", type=int, default=0)
    tt.add_argument("--threads", type=int, default=1)
    tt.add_argument("--tokenizer", default=None, help="sentencepiece model (default: the embedded model's)")
    tt.set_defaults(func=cmd_tts_train)

    sy = sub.add_parser("say", help="speak a sentence with the toy text-to-speech model (needs librosa: [lab])")
    sy.add_argument("text")
    sy.add_argument("--out", default="say.wav")
    sy.add_argument("--model", default=None, help="toy TTS model folder (default: the shipped one)")
    sy.add_argument("--transcribe", action="store_true", help="and transcribe it with the speech-to-text model")
    sy.add_argument("--stt", default=None)
    sy.set_defaults(func=cmd_say)

    e = sub.add_parser("eval", help="WER, emission latency and end-of-turn measures on a folder of items")
    e.add_argument("dir")
    e.add_argument("--model", default=None)
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--threshold", type=float, default=None, help="end-of-turn threshold (default: picked)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    tu = sub.add_parser("turns", help="end-of-turn policies against silence and acoustic baselines")
    tu.add_argument("dir", help="folder of items in the synth format (with --protocol eot-bench, also a folder "
                    "in eot-bench's parquet layout)")
    tu.add_argument("--protocol", choices=["lab", "eot-bench"], default="lab",
                    help="lab: early cuts against latency per turn; eot-bench: LiveKit's silence-span protocol")
    tu.add_argument("--model", default=None)
    tu.add_argument("--limit", type=int, default=None)
    tu.add_argument("--json", action="store_true", help="one JSON object a line per policy setting")
    tu.set_defaults(func=cmd_turns)

    ck = sub.add_parser("check", help="check a folder of items (your recordings): every problem by file and field")
    ck.add_argument("dir", help="a folder of items (or one item's JSON file)")
    ck.add_argument("--json", action="store_true", help="one JSON object a problem")
    ck.set_defaults(func=cmd_check)

    im = sub.add_parser("import", help="make items from other label formats: textgrid, vtt, srt, ctm, audacity, "
                                      "eot-bench")
    im.add_argument("kind", choices=["textgrid", "vtt", "srt", "ctm", "audacity", "eot-bench"])
    im.add_argument("src", help="a label file (its audio beside it, same name) or a folder of them")
    im.add_argument("--out", required=True, help="folder for the items")
    im.add_argument("--audio", default=None, help="the sound file, when it is not SRC's name with a sound suffix")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export-labels", help="write an item's words and pause labels in another format")
    ex.add_argument("kind", choices=["textgrid", "vtt", "srt", "ctm", "audacity"])
    ex.add_argument("item", help="an item's JSON file")
    ex.add_argument("--out", required=True, help="the file to write")
    ex.set_defaults(func=cmd_export_labels)

    pl = sub.add_parser("prelabel", help="a raw recording -> an item: words, pauses and proposed hold/shift labels")
    pl.add_argument("audio", help="a sound file (two channels: one speaker each)")
    pl.add_argument("--out", required=True, help="folder for the item")
    pl.add_argument("--model", default=None, help="folder or Hugging Face repo id (default: embedded)")
    pl.add_argument("--json", action="store_true", help="print the proposed pauses, one JSON object a line")
    pl.set_defaults(func=cmd_prelabel)

    pr = sub.add_parser("probes", help="end-of-turn failure probes: early cuts, latency, misses per kind and policy")
    pr.add_argument("--n", type=int, default=30, help="turns per probe kind (default 30)")
    pr.add_argument("--model", default=None)
    pr.add_argument("--kind", action="append", default=None, help="only this probe kind (repeatable)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--json", action="store_true", help="one JSON object a line per (probe, policy)")
    pr.set_defaults(func=cmd_probes)

    b = sub.add_parser("bench", help="latency and throughput benchmarks")
    b.add_argument("--quick", action="store_true", help="small sizes, a minute or so")
    b.add_argument("--model", default=None)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    sv = sub.add_parser("serve", help="serve a model over Kyutai's streaming STT protocol (websocket); needs [serve]")
    sv.add_argument("--model", default=None, help="folder or Hugging Face repo id (default: embedded)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--slots", type=int, default=8, help="streams stepped together; more clients are refused")
    sv.add_argument("--api-key", action="append", default=None,
                    help="a key clients must send (kyutai-api-key header or ?auth_id=); repeatable "
                         "(default: public_token, as Kyutai's example clients send)")
    sv.add_argument("--threads", type=int, default=None, help="torch threads of the model step")
    sv.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="the model's weights and KV cache while serving (bfloat16 halves the memory a step "
                         "reads: about 1.7x the streams per step on a CPU with AMX/AVX-512 bf16)")
    sv.set_defaults(func=cmd_serve)

    d = sub.add_parser("download", help="fetch a Hugging Face model repo into the local cache")
    d.add_argument("repo", help="e.g. kyutai/stt-1b-en_fr")
    d.set_defaults(func=cmd_download)

    n = sub.add_parser("notebooks", help="copy the teaching notebooks out of the package into a folder")
    n.add_argument("dir")
    n.add_argument("--overwrite", action="store_true", help="replace notebooks already in DIR")
    n.set_defaults(func=cmd_notebooks)

    lb = sub.add_parser("lab", help="open JupyterLab on the notebooks (copied into DIR first); needs [lab]")
    lb.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"default: ./{DEFAULT_DIR}")
    lb.set_defaults(func=cmd_lab)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, TypeError, MissingExtra) as e:
        print(f"dsm-lab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
