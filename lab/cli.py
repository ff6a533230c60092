"""The `dsm-lab` command. Each subcommand is a thin door to a function of `lab`; `--json` prints one JSON
object a line, for pipes."""

from __future__ import annotations

import argparse
import json
import sys


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
                print(f"{e.start_s:8.2f} {e.end_s:8.2f}  {e.text}   (emitted at {e.emitted_s:.2f} s)")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dsm-lab", description="Delayed-streams modeling workbench")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="stream a sound file through a model: words, timestamps, turns")
    t.add_argument("file")
    t.add_argument("--model", default=None, help="folder or Hugging Face repo id (default: embedded)")
    t.add_argument("--alignment", default="training", choices=["training", "scripts"])
    t.add_argument("--json", action="store_true", help="one JSON object a line")
    t.set_defaults(func=cmd_transcribe)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"dsm-lab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
