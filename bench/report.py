"""The tables of bench/README.md, generated from the committed result files in bench/results.

Each table sits between two markers in the README,

    <!-- report:NAME -->
    ... generated, do not edit by hand ...
    <!-- /report:NAME -->

and NAME is one of TABLES below, which says which result file it reads. Re-run a benchmark script, then

    python bench/report.py           # rewrite every table from the result files
    python bench/report.py --check   # exit 1 if a table and its result file disagree (CI runs this)

A focused script's file (e.g. results/latency_batch.jsonl from bench/batch_streams.py), once committed, takes
the place of the rows of the same benchmark in `dsm-lab bench`'s results/latency_bench.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DOCS = [BENCH / "README.md", BENCH.parent / "README.md", BENCH.parent / "lab/data/models/dsm-tiny-en/MODEL_CARD.md",
        BENCH.parent / "lab/data/tts/dsm-toy-tts/MODEL_CARD.md"]
BLOCK = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)", re.S)


def jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / name).read_text().splitlines() if line.strip()]


def rows_of(benchmark: str, *files: str) -> tuple[list[dict], str]:
    """The rows of one benchmark from the first of `files` that exists and has them, and that file's name."""
    for f in files:
        if (RESULTS / f).is_file():
            rows = [r for r in jsonl(f) if r.get("benchmark") == benchmark]
            if rows:
                return rows, f
    raise FileNotFoundError(f"no rows of benchmark {benchmark!r} in any of {', '.join(files)} under {RESULTS}")


def machine(file: str) -> str:
    m = next((r for r in jsonl(file) if r.get("benchmark") == "machine"), None)
    if m is None:
        return ""
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, load average {m['load_avg_1min']:.1f} at the "
            f"start; {m.get('model', '')}")


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "-" + "r" * (len(header) - 1)  # "-": left, "r": right (numbers)
    marks = ["---" if a == "-" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def not_speech(*row_lists: list[dict]) -> str:
    """A line for rows measured on something other than speech: lab.benchmarks.speech falls back to tones
    when no speech engine runs, and its rows say so in `audio`."""
    odd = sorted({r["audio"] for rows in row_lists for r in rows if "not speech" in r.get("audio", "")})
    return "".join(f"\n\n**Audio: {a}.**" for a in odd)


def source(file: str, extra: str = "") -> str:
    return f"\n\nSource: `results/{file}`{extra}."


# ------------------------------------------------------------------------------------------------ tables


def batch_table() -> str:
    rows, f = rows_of("batch", "latency_batch.jsonl", "latency_bench.jsonl")
    columns = sorted({(r["dtype"], r["threads"]) for r in rows}, key=lambda k: (k[0] != "float32", k[1]))
    by = {(r["dtype"], r["threads"], r["batch_size"]): r for r in rows}
    header = ["B"]
    for dtype, threads in columns:
        name = "fp32" if dtype == "float32" else "bf16" if dtype == "bfloat16" else dtype
        header += [f"{name}, {threads} thread{'s' * (threads > 1)}", "(model)"]
    body = []
    for b in sorted({r["batch_size"] for r in rows}):
        cells = [b]
        for dtype, threads in columns:
            r = by.get((dtype, threads, b))
            step = "" if r is None else f"{r['step_ms_p50']:.1f}" + ("" if r["realtime"] else " (too slow)")
            cells += [step, "" if r is None else f"{r['model_step_ms_p50']:.1f}"]
        body.append(cells)
    return table(header, body) + not_speech(rows) + source(f, f" ({machine(f)})" if machine(f) else "")


def flush_table() -> str:
    rows, f = rows_of("flush", "latency_flush.jsonl", "latency_bench.jsonl")
    body = [[r["delay_frames"], f"{r['flush_ms']:.1f}", f"{r['floor_ms']:.1f}", f"{r['ratio_to_floor']:.2f}",
             f"{r['wait_ms']:.0f}", f"{r['unmute_frames']}, {r['unmute_ms']:.1f}"] for r in rows]
    header = ["D", "flush() ms", "floor (D + 1) x step", "ratio", "wait D x 80 ms", "Unmute variant (frames, ms)"]
    return table(header, body) + not_speech(rows) + source(f)


def hooks_table() -> str:
    (r, *_), f = rows_of("hook_overhead", "hook_overhead.jsonl", "latency_bench.jsonl")
    ms = r["median_step_ms"]
    body = [["hooks, nothing recorded", f"{ms['hooks']:.3f} ms ({r['overhead_nothing_recorded_pct']:+.2f} % vs no-op)"],
            ["HookPoint.fire = no-op", f"{ms['no-op']:.3f} ms"],
            ["every attention pattern recorded",
             f"{ms['attention']:.3f} ms ({r['overhead_attention_recorded_pct']:+.1f} %)"],
            ["direct estimate: one empty fire() x hook points a step",
             f"{r['fire_cost_us']:.3f} us x {r['hook_points']} = {r['estimated_overhead_pct']:.2f} %"]]
    return table(["variant", "median step"], body, "-r") + source(f, f", {r['steps_per_variant']} steps per variant")


def stt1b_table() -> str:
    rows, f = rows_of("stt_1b_size", "latency_stt1b.jsonl", "latency_bench.jsonl")
    body = [["fp32" if r["dtype"] == "float32" else "bf16", r["threads"], f"{r['step_ms_p50']:.0f} ms",
             f"{r['rtf']:.2f}x", f"{r['weights_mb']:.0f} MB", f"{r['kv_cache_mb']:.0f} MB",
             f"{r['rss_mb'] / 1024:.1f} GB (peak {r['peak_rss_mb'] / 1024:.1f} GB)"] for r in rows]
    header = ["dtype", "threads", "step p50", "real-time factor", "weights", "KV cache (1 stream, 750 steps)",
              "resident set"]
    return table(header, body, "-rrrrrr") + source(f)


def targets_table() -> str:
    (single, *_), f = rows_of("single_stream", "latency_bench.jsonl")
    batch, fb = rows_of("batch", "latency_batch.jsonl", "latency_bench.jsonl")
    fp32 = [r for r in batch if r["dtype"] == "float32"]
    threads = max(r["threads"] for r in fp32)
    ok = [r for r in fp32 if r["threads"] == threads and r["realtime"]]
    best = max(ok, key=lambda r: r["batch_size"])
    largest = max(r["batch_size"] for r in fp32 if r["threads"] == threads)
    flush, ff = rows_of("flush", "latency_flush.jsonl", "latency_bench.jsonl")
    d6 = next(r for r in flush if r["delay_frames"] == 6)
    ratios = [r["ratio_to_floor"] for r in flush]
    (hook, *_), fh = rows_of("hook_overhead", "hook_overhead.jsonl", "latency_bench.jsonl")
    body = [
        ["single stream, real-time factor (80 ms chunks, offline, 1 thread)", ">= 25x",
         f"**{single['rtf']:.1f}x** (step p50 {single['step_ms_p50']:.2f} ms, p99 {single['step_ms_p99']:.2f} ms; "
         f"{single['audio_s']:.0f} s of audio)", f"`results/{f}` `single_stream`"],
        ["streams in real time, batched (median step < 80 ms)", ">= 200",
         f"**{best['batch_size']}** ({best['step_ms_p50']:.1f} ms, fp32, {threads} threads; largest size measured "
         f"{largest})", f"`results/{fb}` `batch`"],
        ["flush latency / ((D + 1) x median step), D = 6", "<= 1.2",
         f"**{d6['ratio_to_floor']:.2f}** ({d6['flush_ms']:.1f} ms vs floor {d6['floor_ms']:.1f} ms; "
         f"{min(ratios):.2f} to {max(ratios):.2f} for D = {flush[0]['delay_frames']}..{flush[-1]['delay_frames']})",
         f"`results/{ff}` `flush`"],
        ["hook overhead, nothing recorded", "<= 2 %",
         f"**{hook['overhead_nothing_recorded_pct']:+.2f} %** (direct estimate {hook['estimated_overhead_pct']:.2f} %)",
         f"`results/{fh}` `hook_overhead`"],
    ]
    return table(["measure", "target", "measured", "result file"], body, "----") + not_speech([single], batch, flush)


def md_tables(path: Path) -> list[list[dict]]:
    """The markdown tables of a result file, each as a list of rows (dicts by header)."""
    tables, current, header = [], None, None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            current = header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header, current = cells, []
            tables.append(current)
        elif not set("".join(cells)) <= set("-: "):
            current.append(dict(zip(header, cells)))
    return tables


def latency_lab_table() -> str:
    words, steps, flush = md_tables(RESULTS / "latency_lab.md")[:3]
    body = [[f"emission latency, {w['clock']}, s", w["p50"], w["p90"], w["max"]] for w in words]
    s = steps[0]
    body.append(["step compute (frontend + model), ms", s["step_ms_p50"], s["step_ms_p90"], s["step_ms_max"]])
    out = table(["", "p50", "p90", "max"], body)
    out += (f"\n\nReal-time factor {float(s['rtf_mean']):.1f}x (mean over items); the simulated server fell at most "
            f"{s['max_lag_s']} s behind.\n\nFlush, per turn: end-of-turn decision -> the turn's final word delivered, "
            "seconds (p50 / p90), and in how many turns that word was recognised:\n\n")
    by = {(r["decision"], r["variant"]): r for r in flush}
    rows = []
    for decision, label in (("reference", "at the reference end of the turn (perfect VAD)"),
                            ("model", "the model's own EndOfTurn")):
        cells = [label]
        for v in ("none", "flush", "unmute"):
            r = by[(decision, v)]
            cells.append(f"{r['latency_p50_s']} / {r['latency_p90_s']} ({r['final_word_out']}/{r['turns']})")
        rows.append(cells)
    out += table(["decision", "no flush", "`flush()`", "Unmute variant"], rows)
    return out + source("latency_lab.md", "; per turn: `results/latency_turns.csv`")


def gpu_table() -> str:
    body = []
    for path in sorted(RESULTS.glob("gpu_streams_*.json")):
        r = json.loads(path.read_text())
        steps = {row["batch_size"]: row["step_ms_p50"] for row in r["rows"]}
        shown = [b for b in (1, 64, 400, 512, 640) if b in steps] or sorted(steps)  # a "large" run: its own sizes
        ok = [row for row in r["rows"] if row.get("realtime")]
        best = max(ok, key=lambda row: row["batch_size"]) if ok else None
        stopped = f"; stopped: {r['stopped'].split(' (')[0]}" if r.get("stopped") else ""
        body.append([r["device"], "Mimi + LM" if "mimi" in path.stem else "LM only",
                     " / ".join(f"{steps[b]:.1f}" for b in shown) + f" ms (B = {' / '.join(map(str, shown))})",
                     ("none" if best is None else f"**{r['streams_in_realtime']}** ({best['step_ms_p50']:.1f} ms)")
                     + stopped,
                     f"`results/{path.name}`"])
    return table(["card", "step", "step p50", "streams in real time (< 80 ms a step), largest measured", "result file"],
                 body, "-----")


def synth_speed_table() -> str:
    rows, f = rows_of("synth_speed", "synth_speed.jsonl")
    body = [[r["workers"], r["items"], f"{r['items_per_s']:.1f}", f"{r['audio_s_per_wall_s']:.0f}x",
             f"{r['minutes_for_10000']:.1f} min"] for r in rows]
    return table(["workers", "items", "items/s", "audio per wall second", "10,000 items"], body) + source(f)


def delay_sweep_table() -> str:
    (rows, *_) = md_tables(RESULTS / "delay_sweep.md")
    keys = ["set", "model", "D (frames)", "items", "WER %", "latency p50 (s)", "latency p90 (s)"]
    return table(keys, [[r[k] for k in keys] for r in rows]) + source("delay_sweep.md", " (the corpus and command)")


def wheel_install_table() -> str:
    r = json.loads((RESULTS / "wheel_install.json").read_text())
    core, full = r["core_installed"], r["lab_installed"]
    body = [["build (`python -m build`)", f"{r['build_s']:.1f} s",
             f"wheel {r['wheel_mib']:.1f} MiB, sdist {r['sdist_mib']:.1f} MiB"],
            ["torch==2.13.0 (CPU), first", f"{r['torch_install_s']:.1f} s", f"{core['torch_mib']:.0f} MiB"],
            ["the wheel, core dependencies", f"{r['core_install_s']:.1f} s",
             f"dsm-lab {core['dsm_lab_mib']:.0f} MiB, other {core['other_dependencies_mib']:.0f} MiB; "
             f"environment {core['total_mib']:.0f} MiB"],
            ["`[lab]` on top", f"{r['lab_install_s']:.1f} s", f"+{full['total_mib'] - core['total_mib']:.0f} MiB"],
            ["`dsm-lab transcribe timer.wav` (outside the checkout)", f"{r['transcribe_s']:.1f} s",
             f"\"{r['transcript']}\""],
            [f"`{r['notebook']}` headless", f"{r['notebook_s']:.1f} s", f"{r['notebook_figures']} figures"]]
    # shown in the top-level README too, hence the full path of the source
    return table(["step", "time", "size / result"], body, "-r-") + (
        f"\n\nSource: `bench/results/wheel_install.json` (`python bench/wheel_install.py --lab`; Python {r['python']}, "
        f"{r['cores']} cores; packages from a local mirror and pip's cache, so install times, not download times).")


def word_times_table() -> str:
    r = json.loads((RESULTS / "word_times.json").read_text())
    e, m = r["end_error_ms"], r["end_error_ms_median"]
    body = [["start: the EPAD before the word", f"{r['start_error_ms']:.0f}", "", "100 %"],
            ["end: the next EPAD (Kyutai's server, lab's rule)", f"{e['next_epad']:.0f}", f"{m['next_epad']:.0f}",
             f"{100 * r['ends_known_next_epad']:.0f} %"],
            ["end: start + pieces x 80 ms (former rule)", f"{e['pieces']:.0f}", f"{m['pieces']:.0f}", "100 %"]]
    return table(["word time", "mean error (ms)", "median (ms)", "known for"], body, "-rrr") + (
        f"\n\nSource: `results/word_times.json` (`python bench/word_times.py`; {r['model']}, "
        f"{r['matched_words']} matched words of the shipped clips {', '.join(r['clips'])}).")


def resample_table() -> str:
    r = json.loads((RESULTS / "resample.json").read_text())
    body = []
    for row in r["rows"]:
        waits = " / ".join(f"{w['wait_ms_mean']:.0f} ({w['wait_ms_max']:.0f})" for w in row["waiting"])
        if "samples_per_s" not in row:  # the chunking's own share: nothing else measured
            body.append([f"{row['rate_in'] / 1000:g} kHz", row["resampler"], "", "", "", waits])
            continue
        db = 20 * math.log10(row["rms_vs_ideal"] / row["signal_rms"])
        body.append([f"{row['rate_in'] / 1000:g} kHz", row["resampler"],
                     f"{row['max_abs_vs_ideal']:.1e} / {row['rms_vs_ideal']:.1e} ({db:.0f} dB)",
                     "yes" if row["max_abs_chunked_vs_whole"] == 0 else
                     f"**no** ({row['max_abs_chunked_vs_whole']:.1e})",
                     f"{row['samples_per_s'] / 1e6:.1f} ({row['samples_per_s_fastest'] / 1e6:.1f})", waits])
    header = ["input", "resampler", "error vs exact: max / RMS (re signal)", "same samples however chunked",
              "M samples/s: median (fastest)", "wait for a frame, ms, chunks of 10 / 40 / 80 ms: mean (max)"]
    ours = [row for row in r["rows"] if row["resampler"].startswith("lab.audio")]
    soxr = {row["rate_in"]: row for row in r["rows"] if row["resampler"].startswith("soxr")}
    pairs = [(o, soxr[o["rate_in"]]) for o in ours]
    lower_db = [20 * math.log10(o["rms_vs_ideal"] / x["rms_vs_ideal"]) for o, x in pairs]
    faster = [x["samples_per_s"] / o["samples_per_s"] for o, x in pairs]
    later = [x["waiting"][k]["wait_ms_mean"] - o["waiting"][k]["wait_ms_mean"] for o, x in pairs
             for k in range(len(o["waiting"]))]
    later_max = max(x["waiting"][k]["wait_ms_max"] - o["waiting"][k]["wait_ms_max"] for o, x in pairs
                    for k in range(len(o["waiting"])))
    summary = (f"\n\nsoxr against ours: RMS error {min(lower_db):.0f} to {max(lower_db):.0f} dB lower, "
               f"{min(faster):.0f} to {max(faster):.0f} times faster; a frame waits {min(later):.0f} to "
               f"{max(later):.0f} ms longer on average, up to {later_max:.0f} ms longer. Ours gives the samples of "
               f"scipy's one-shot `resample_poly` (the filter it streams) within "
               f"{max(o['max_abs_vs_resample_poly'] for o in ours):.0e}, at "
               f"{min(o['samples_per_s'] for o in ours) / 1e6:.1f} million input samples a second or more.")
    before, after = r["load_avg_before"][0], r["load_avg_after"][0]
    return table(header, body, "--rrrr") + summary + source(
        "resample.json", f" (`{r['command']}`; {r['rows'][0]['repeats']} "
        f"repeats taken in turn, {r['cores']} cores shared with another job: load average {before:.1f} before, "
        f"{after:.1f} after; soxr {r['soxr']})")


def voices_table() -> str:
    r = json.loads((RESULTS / "voices.json").read_text())
    body = []
    for s in r["sets"]:
        body.append([s["what"], s["held_out"], f"{s['items']} (-{s['dropped_for_overlap']})", s["overlap"],
                     f"{100 * s['wer']:.1f} %",
                     "none (diagnostic)" if s["wer_target"] is None else f"<= {100 * s['wer_target']:.0f} %",
                     f"{s['question_f1']:.2f}" + (f" ({s['question_f1_sentences']:.2f})"
                                                  if "question_f1_sentences" in s else ""),
                     f"{100 * s['case_accuracy']:.1f} %",
                     f"{s['emission_latency_p50_s']:.3f} / {s['emission_latency_p90_s']:.3f} s",
                     f"{1000 * s['timestamp_error_s']:.0f} ms",
                     f"{1000 * s['end_error_s']:.0f} ms" if "end_error_s" in s else "not measured"])
    header = ["test set", "held out", "items (dropped: sentence in training)", "overlap", "WER", "target", "?-F1",
              "case", "emission latency p50 / p90", "start error", "end error (next EPAD)"]
    return table(header, body, "--rrrrrrrrr") + (
        f"\n\nModel `{Path(r['model']).name}` (D = {r['delay_frames']}): weights {r['weights_mb']} MB, "
        f"{r['real_time_factor_1_thread']}x real time on one thread. Emission latency target: p50 <= D x 80 ms + "
        f"200 ms = {r['delay_frames'] * 0.08 + 0.2:.2f} s. Question-mark F1 target on the held-out engine: >= 0.9; "
        f"?-F1 counts a \"?\" on the word it ends (a misheard or missing last word is a miss and a false alarm)"
        + (", in brackets per sentence (the sentence ends with \"?\" or not, whatever its words)."
           if any("question_f1_sentences" in s for s in r["sets"]) else ".")
        + (f" Training folders (test items sharing a sentence with them dropped): "
           f"{', '.join(r['training_corpora'])}; load average during the run {r['load_average_1min']}."
           if "training_corpora" in r else "") + " Source: `bench/results/voices.json` "
        "(`python bench/voices.py`).")


def voices_turns_table() -> str:
    r = json.loads((RESULTS / "voices.json").read_text())
    body = []
    for s in r["sets"]:
        for row in s.get("end_of_turn", {}).get("rows", []):
            body.append([s["set"], f"{row['baseline_value']:.2f} s", f"{100 * row['baseline_early_cut_rate']:.1f} %",
                         f"{row['baseline_latency_p50_s']:.2f} s", f"{row['value']:.3f}",
                         f"{100 * row['early_cut_rate']:.1f} %", f"{row['latency_p50_s']:.2f} s",
                         "yes" if row["passes"] else "no"])
    header = ["test set", "silence >=", "its early cuts", "its p50", f"{r.get('head_s', 2.0):g} s head > th",
              "early cuts", "p50", "at most half"]
    return table(header, body, "-rrrrrr-") + "\n\nSource: `bench/results/voices.json` (`python bench/voices.py`)."


def embedded_eot_table() -> str:
    r = json.loads((RESULTS / "embedded_model.json").read_text())
    body = [[e["set"], e["items"], f"{e['head_s']:g} s > {e['threshold']:.3f}",
             f"{100 * e['early_cut_rate']:.1f} % / {e['latency_p50_s']:.2f} s / {100 * e['miss_rate']:.1f} %",
             f"{e['baseline_min_silence_s']:.2f} s",
             f"{100 * e['baseline_early_cut_rate']:.1f} % / {e['baseline_latency_p50_s']:.2f} s / "
             f"{100 * e['baseline_miss_rate']:.1f} %"] for e in r["end_of_turn"]]
    header = ["test set", "items", "head > threshold (picked on val)", "early cuts / p50 latency / misses",
              "silence timer at the same p50", "its early cuts / p50 / misses"]
    return table(header, body, "-r----") + (
        f"\n\n`lab.load()` {r['load_s']:.2f} s; transcribing 10 s of audio {r['transcribe_10s_s']:.2f} s on one "
        f"thread. Source: `bench/results/embedded_model.json` (`python bench/embedded_model.py`).")


def probes_table() -> str:
    rows = jsonl("probes.jsonl")
    run = next(r for r in rows if r["benchmark"] == "probes_run")
    probes = [r for r in rows if r["benchmark"] == "probes"]
    policies = list(dict.fromkeys(r["policy"] for r in probes))
    by = {(r["probe"], r["policy"]): r for r in probes}

    def cell(r):
        lat = "-" if r["latency_p50_s"] is None else f"{r['latency_p50_s']:.2f} s"
        return f"{100 * r['early_cut_rate']:.0f} % / {lat} / {100 * r['miss_rate']:.0f} %"

    body = [[k, *(cell(by[(k, p)]) for p in policies)] for k in dict.fromkeys(r["probe"] for r in probes)]
    return table(["probe (early cuts / latency p50 / misses)", *policies], body, "-" + "r" * len(policies)) + (
        f"\n\nSource: `results/probes.jsonl` (`python bench/probes.py`; model {run['model']}, {run['n']} turns "
        f"per kind, seed {run['seed']}).")


def serve_load_table() -> str:
    rows, f = rows_of("serve_load", "serve_load.jsonl")
    locals_, _ = rows_of("serve_load_local", "serve_load.jsonl")
    first = rows[0].get("dtype", "float32")

    def same(r):
        other = r.get(f"clients_words_equal_{first}")
        return "" if other is None or r.get("dtype", first) == first else f"{other}/{r['clients']}"

    body = [[r.get("dtype", "float32"), r["clients"], f"{r['step_lag_ms_p50']:.1f}", f"{r['step_lag_ms_p99']:.1f}",
             f"{r['step_lag_ms_max']:.1f}", f"{r['word_latency_ms_p50']:.0f}", f"{r['word_latency_ms_p99']:.0f}",
             f"{r['server_step_ms_p50']:.1f}", f"{r['server_streams_per_step_mean']:.1f}",
             f"{r['clients_words_exact']}/{r['clients']}", same(r), r["errors"]] for r in rows]
    for local in locals_:
        body.append([local.get("dtype", "float32"), "local stream", "", "", "", f"{local['word_latency_ms_p50']:.0f}",
                     f"{local['word_latency_ms_p99']:.0f}", "", "", "", "", ""])
    header = ["weights", "clients", "step lag p50 ms", "p99", "max", "word latency p50 ms", "p99",
              "model step p50 ms", "streams per step", "words exact", f"= {first}'s words", "errors"]
    m = machine(f)
    out = table(header, body) + source(f, f", {rows[0]['seconds']:g} s of audio per client ({m})" if m else "")
    precision, _ = rows_of("serve_precision", "serve_load.jsonl")
    if precision and "not_measured" not in precision[0]:
        r = precision[0]
        dtypes = [k.removeprefix("wer_") for k in r if k.startswith("wer_")]
        cells = ", ".join(f"{d} {100 * r[f'wer_{d}']:.1f} %" for d in dtypes)
        same_text = ", ".join(f"{d} {r[f'same_text_{d}']}/{r['items']}" for d in dtypes[1:])
        out += (f"\n\nPrecision, on items held out from training ({r['items']} items: "
                f"{', '.join(r['sets'])}; another engine and unheard voices): WER {cells}; transcripts "
                f"word for word equal to {dtypes[0]}'s: {same_text}.")
    return out


def kyutai_clients_table() -> str:
    result = json.loads((RESULTS / "kyutai_clients.json").read_text())
    body = [[r["clip"], f"{r['words_script']} / {r['words_local']}", "yes" if r["same_words"] else "**no**",
             f"{r['max_time_diff_s']:.2f}", "yes" if r["within_one_frame"] else "**no**"] for r in result["clips"]]
    header = ["clip", "words (script / local)", "same words", "max time difference s", "within one frame"]
    out = table(header, body, "-rrrr") + source(
        "kyutai_clients.json", f"; `{result['script']}` sha256 {result['script_sha256'][:12]}, model {result['model']}")
    if result.get("mic_clips"):
        mic = [[r["clip"], r["script_text"], r["local_text"], f"{r['wer']:.2f}", r["vad_pauses_marked"]]
               for r in result["mic_clips"]]
        out += "\n\n" + table(["clip", "mic script heard", "model.transcribe()", "WER", "pauses marked (prs[2])"],
                               mic, "---rr") + source(
            "kyutai_clients.json", f"; `{result['mic_script']}` sha256 {result['mic_script_sha256'][:12]}")
    return out


def long_recording_table() -> str:
    r = json.loads((RESULTS / "long_recording.json").read_text())
    m, lab = r["machine"], r["labels"]
    body = [["pre-labelling (embedded model + Silero per channel)", f"**{r['prelabel_s']:.0f} s** "
             f"({r['prelabel_realtime_factor']:.0f}x real time)", f"<= {r['prelabel_target_s']} s",
             f"{r['rss_mb_after_first_tenth']:.0f} -> {r['rss_mb_end']:.0f} MiB "
             f"({r['rss_growth_mb_after_first_tenth']:+.0f} MiB over the last nine tenths)"],
            [f"the turn lab (run_items streamed, {r['turn_lab_policies']} policies swept)",
             f"{r['turn_lab_s']:.0f} s", "", f"{r['turn_lab_rss_mb_end']:.0f} MiB at the end"]]
    out = table(["step", "wall time", "target", "resident memory (sampled every 10 s of audio)"], body, "-r--")
    out += (f"\n\nProposed labels against the reference: {lab['found']} of {lab['reference_pauses']} reference pauses "
            f"found ({lab['reference_shifts']} shifts), {lab['same_label']} with the same label "
            f"({100 * lab['label_agreement']:.1f} %); {lab['proposed_pauses']} pauses proposed; the item written has "
            f"{r['prelabelled_item_problems']} problems (`dsm-lab check`).")
    return out + source("long_recording.json", f" ({r['minutes']:.0f} minutes, {r['channels']} channels, "
                        f"{r['turns']} turns; {m['cores']} cores, torch {m['torch']}, one thread; load average "
                        f"{m['load_avg_1min_start']:.1f} at the start, {m['load_avg_1min_end']:.1f} at the end: "
                        f"{m['note']})")


def tts_loop_table() -> str:
    r = json.loads((RESULTS / "tts_loop.json").read_text())
    names = {"espeak": "espeak-ng itself (the voice the toy model learned)",
             "vocoded": "espeak-ng's log-mel spectra through Griffin-Lim",
             "toy_tts": "the toy text-to-speech model (its own rhythm) through Griffin-Lim"}
    rows = [[names[k], f"{100 * v:.1f} %"] for k, v in r["wer"].items()]
    t = r["tts_training"]
    return table(["speech heard by the speech-to-text model", "WER"], rows, "-r") + (
        f"\n\n{r['sentences']} {r['held_out']}; overlap with its training {r['overlap_with_tts_training']}. "
        f"Target for the toy model: WER <= {100 * r['wer_target']:.0f} %. Speech-to-text model `{r['stt_model']}`; "
        f"toy model `{r['tts_model']}` ({r['tts_params'] / 1e6:.1f} M parameters, {t.get('steps')} steps in "
        f"{t.get('minutes')} min on one CPU thread, {t.get('sentences')} sentences of espeak-ng's {r['voice']}); "
        f"every word spoken in {100 * r['all_words_spoken']:.0f} % of the sentences; mean length "
        f"{r['mean_duration_s']['toy_tts']} s against espeak-ng's {r['mean_duration_s']['espeak']} s. "
        f"Load average during the run {r['load_average_1min']}. Source: `bench/results/tts_loop.json` "
        f"(`python bench/tts_loop.py`).")


def train_throughput_table() -> str:
    r = json.loads((RESULTS / "train_throughput.json").read_text())
    m = r["machine"]
    body = [[x["precision"], x["threads"], f"{x['steps_per_minute']:.1f}", f"{x['speedup_vs_float32_1_thread']:.2f}x",
             x["steps"], f"{x['elapsed_s']:.0f}"] for x in r["runs"]]
    header = ["precision", "model threads", "steps per minute", "vs float32, 1 thread", "steps", "s"]
    return table(header, body, "-rrrrr") + source(
        "train_throughput.json", f" (`python bench/train_throughput.py`; {m['cpu']}, {m['cores']} cores, torch "
        f"{m['torch']}, native bf16: {'yes' if r['native_bf16'] else 'no'}; batch {r['runs'][0]['batch_size']} of "
        f"{' + '.join(r['corpora'])}, {r['minutes_each']:g} min each from scratch; one augmented batch takes "
        f"{r['batch_make_ms']:.0f} ms on its own thread)")


def recipe_table() -> str:
    """make model's two stages in the float32 recipe (the previous weights) and in the bf16 one (the shipped
    weights), each stage measured on the same held-out sets."""
    runs = [json.loads((RESULTS / f).read_text()) for f in
            ("voices_stage1.json", "voices_fp32.json", "voices_bf16_stage1.json", "voices.json")]
    by = [{x["set"]: x for x in r["sets"]} for r in runs]

    def wer(i, name):
        x = by[i].get(name)
        return f"{100 * x['wer']:.1f} %" if x else "not measured"

    def qf1(i, name):
        x = by[i][name]
        return f"{x['question_f1']:.2f}" + (f" ({x['question_f1_sentences']:.2f})" if "question_f1_sentences" in x
                                            else "")
    body = [[x["what"], wer(0, x["set"]), wer(1, x["set"]), wer(2, x["set"]), f"**{wer(3, x['set'])}**",
             qf1(1, x["set"]), qf1(3, x["set"])] for x in runs[3]["sets"]]
    header = ["test set (held out)", "float32: stage 1", "stages 1 + 2", "bfloat16: stage 1",
              "stages 1 + 2 (shipped)", "?-F1 float32", "?-F1 shipped (per sentence)"]
    stages = runs[3].get("training", {}).get("stages") or []
    return table(header, body, "-rrrrrr") + (
        "\n\nWER, then question-mark F1 of the two-stage models. Sources: `results/voices_stage1.json` and "
        "`results/voices_fp32.json` (the float32 recipe's stage 1 and its two-stage model, the weights shipped "
        "before), `results/voices_bf16_stage1.json` (`python bench/voices.py --model RUN1/model --out ...`) and "
        "`results/voices.json` (`python bench/voices.py`, the shipped model)" + (
            "; the bfloat16 stages took " + " and ".join(f"{x['steps']:,}" for x in stages) + " steps"
            if stages else "") + ".")


TABLES = {"voices": voices_table, "voices-turns": voices_turns_table, "embedded-eot": embedded_eot_table,
          "probes": probes_table, "targets": targets_table, "batch": batch_table, "flush": flush_table,
          "hooks": hooks_table, "stt1b": stt1b_table, "gpu": gpu_table, "latency-lab": latency_lab_table,
          "synth-speed": synth_speed_table,
          "resample": resample_table,
          "delay-sweep": delay_sweep_table, "wheel-install": wheel_install_table,
          "word-times": word_times_table, "serve-load": serve_load_table, "kyutai-clients": kyutai_clients_table,
          "long-recording": long_recording_table, "tts-loop": tts_loop_table,
          "train-throughput": train_throughput_table, "recipe": recipe_table}


def render(text: str) -> str:
    def fill(m):
        if m["name"] not in TABLES:
            raise KeyError(f"unknown table {m['name']!r}; known: {', '.join(TABLES)}")
        return m.group(1) + TABLES[m["name"]]() + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="fail if a table differs from its result file")
    p.add_argument("docs", nargs="*", type=Path, default=DOCS)
    args = p.parse_args(argv)
    stale = []
    for doc in args.docs:
        text = doc.read_text()
        new = render(text)
        if new == text:
            continue
        if args.check:
            stale += [f"{doc}: {m['name']}" for m, n in zip(BLOCK.finditer(text), BLOCK.finditer(new))
                      if m.group(0) != n.group(0)]
        else:
            doc.write_text(new)
            print(f"rewrote {doc}")
    if stale:
        print("tables that disagree with their result files (run `python bench/report.py`):\n  " + "\n  ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
