"""The `dsm-lab` command, run as a user runs it, in a subprocess; the cheaper checks call `main()` in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf
from conftest import speechlike

import lab
from lab.cli import main


def dsm_lab(*args, cwd=None):
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lab.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_transcribe_json_lines(tiny_model_dir, tmp_path):
    audio = speechlike(2.0, 44_100, seed=3)
    path = tmp_path / "clip.flac"
    sf.write(path, np.stack([audio, audio], axis=1), 44_100)  # stereo, 44.1 kHz: downmixed and resampled
    result = dsm_lab("transcribe", path, "--model", tiny_model_dir, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(o, dict) for o in objects)
    assert objects[-1]["type"] == "transcript"
    words = [o for o in objects if o["type"] == "word"]
    assert {o["type"] for o in objects} <= {"word", "end_of_turn", "transcript"}
    assert all(set(w) == {"type", "text", "start_s", "end_s", "emitted_s"} for w in words)

    expected = lab.load(tiny_model_dir).transcribe(path)
    assert objects[-1]["text"] == expected.text
    assert [(w["text"], w["start_s"], w["emitted_s"]) for w in words] == \
        [(w.text, w.start_s, w.emitted_s) for w in expected.words]
    assert len(words) > 3


def test_transcribe_plain_text(tiny_model_dir, tmp_path, capsys):
    """In-process (the subprocess tests above and below cover the entry point itself)."""
    path = tmp_path / "clip.wav"
    sf.write(path, speechlike(1.0, 16_000), 16_000, subtype="PCM_16")
    assert main(["transcribe", str(path), "--model", str(tiny_model_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    transcript = lab.load(tiny_model_dir).transcribe(path)
    assert lines[-1] == transcript.text
    assert sum("(emitted at" in line for line in lines) == len(transcript.words)


def test_missing_file_exits_2_naming_it(tiny_model_dir, tmp_path):
    result = dsm_lab("transcribe", tmp_path / "nowhere.wav", "--model", tiny_model_dir, "--json")
    assert result.returncode == 2
    assert "nowhere.wav" in result.stderr and "not found" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_bad_model_exits_2_naming_it(tmp_path, capsys):
    path = tmp_path / "clip.wav"
    sf.write(path, speechlike(0.5), 24_000)
    assert main(["transcribe", str(path), "--model", str(tmp_path / "no-model-here")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dsm-lab transcribe: error:") and "no-model-here" in err


def test_export_casts_the_weights_and_keeps_the_training_record(tiny_model_dir, tmp_path, capsys):
    import shutil

    from safetensors import safe_open

    source = shutil.copytree(tiny_model_dir, tmp_path / "run-model")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "training": {"steps": 123, "seed": 0}}))
    assert main(["export", str(source), str(tmp_path / "shipped")]) == 0
    assert "float16 weights" in capsys.readouterr().out
    shipped = tmp_path / "shipped"
    assert json.loads((shipped / "config.json").read_text())["training"] == {"steps": 123, "seed": 0}
    with safe_open(str(shipped / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    audio = (speechlike(2.0, 24_000, seed=4), 24_000)
    full, half = lab.load(source).transcribe(audio), lab.load(shipped).transcribe(audio)
    assert (full.steps["token"] == half.steps["token"]).mean() > 0.9  # fp16 rounding, nothing more
    assert main(["export", str(source), str(tmp_path / "x"), "--weights-dtype", "int8"]) == 2
    assert "int8" in capsys.readouterr().err


def test_synth_with_several_engines_and_clear_refusals(tmp_path):
    out = tmp_path / "corpus"
    result = dsm_lab("synth", "--n", 6, "--seed", 2, "--out", out, "--engines", "espeak,festival,piper",
                     "--exclude-voice", "festival:ked", "--json")
    assert result.returncode == 0, result.stderr
    metas = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(metas) == 6 and {m["engine"] for m in metas} <= {"espeak", "festival", "piper"}
    assert len({m["engine"] for m in metas}) >= 2 and all(m["voice"] != "festival:ked" for m in metas)
    for args, message in [(["--engines", "espeak,flite"], "reserved for acceptance"),
                          (["--voice", "festival:nobody"], "festival has no voice 'nobody'"),
                          (["--engines", "mbrola"], "unknown speech engine 'mbrola'")]:
        bad = dsm_lab("synth", "--n", 1, "--out", tmp_path / "bad", *args)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr
    shuffled = dsm_lab("synth", "--n", 2, "--seed", 3, "--out", tmp_path / "shuffle", "--sentences", "shuffle")
    assert shuffled.returncode == 0, shuffled.stderr
    assert all(not json.loads(p.read_text())["pauses"][:-1] for p in (tmp_path / "shuffle").glob("*.json"))
