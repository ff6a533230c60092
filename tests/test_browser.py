"""A real browser hears a real (fake) microphone: JupyterLab + Debian's Chromium, driven by Playwright.

JupyterLab serves a temporary copy of lab/notebooks/02_live_microphone.ipynb (SOURCE = "browser") on a free
localhost port; Chromium, headless, gets its microphone from a sample WAV (`--use-file-for-fake-audio-capture`,
it loops) and grants it without a prompt (`--use-fake-ui-for-media-stream`). The notebook runs in the page;
the browser widget captures the microphone with an AudioWorklet and streams PCM to the kernel, which runs the
embedded model; the test waits until the sample's words appear in the transcript widget. Nothing is mocked.
A screenshot goes to the pytest tmp dir (and, with DSM_LAB_KEEP_SCREENSHOT=1, to bench/results/).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from lab.metrics import normalize
from lab.resources import notebooks_root
from lab.widgets import sample
from lab.widgets.notebooks import set_parameters

ROOT = Path(__file__).resolve().parent.parent
LIVE = notebooks_root() / "02_live_microphone.ipynb"
DELAYED = notebooks_root() / "01_delayed_streams.ipynb"
TURNS = notebooks_root() / "03_turn_detection.ipynb"
CHROMIUM = "/usr/bin/chromium"
SAMPLE = "weather"  # a clip the embedded model transcribes word for word
RECORD = ROOT / "bench" / "results" / "browser_live_microphone.png"
# Chromium without network: the background-networking flags stop it from flooding refused connections.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

# The notebook panel's kernel is connected and idle (JupyterLab exposes its app with expose_app_in_browser).
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return Boolean(k && k.status === "idle" && k.connectionStatus === "connected");
}"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


ANNOTATOR_NB = "annotate.ipynb"
SERVED_ROOTS: dict[str, Path] = {}  # url -> the folder that JupyterLab serves


def jupyter_lab_root(url: str) -> Path:
    return SERVED_ROOTS[url]


def write_annotator_page(root: Path):
    """An item (the timer clip, its two pauses labelled hold and shift, nothing confirmed) and a notebook
    that shows the annotator on it."""
    from lab.items import write_item

    clip = sample("timer")
    pauses = [{"start": p["start"], "end": p["end"], "label": "hold" if p["kind"] == "mid_turn" else "shift",
               "confidence": 0.7, "confirmed": False} for p in clip.meta["pauses"]]
    write_item(root / "items" / "timer.json", {"audio": "timer.wav", "words": clip.words,
                                               "turns": clip.meta["turns"], "pauses": pauses},
               clip.audio, clip.sample_rate)
    nb = nbformat.v4.new_notebook(metadata=nbformat.read(TURNS, as_version=4).metadata)  # its kernel, no dialog
    nb.cells = [nbformat.v4.new_code_cell("from lab.widgets import Annotator\n"
                                          "annotator = Annotator('items/timer.json', view_s=5.0)\nannotator")]
    nbformat.write(nb, root / ANNOTATOR_NB)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """JupyterLab on a free port, token disabled, serving temp copies of the notebooks under test."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    for path, parameters in ((LIVE, {"SOURCE": "browser", "SAMPLE": SAMPLE}), (DELAYED, {"N_CLIPS": 1}),
                             (TURNS, {"N_ITEMS": 3})):
        nb = set_parameters(nbformat.read(path, as_version=4), parameters)
        nbformat.write(nb, root / path.name)
    write_annotator_page(root)
    port = free_port()
    # No "official Jupyter news?" toast over the page: the user settings of this run say no.
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "OMP_NUM_THREADS": "1",  # a 5 M model on a shared 2-core machine: one thread
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings")}
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--port={port}", "--ip=127.0.0.1", "--no-browser",
           "--ServerApp.open_browser=False", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (tmp / "jupyter.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/api/status", proc)
        SERVED_ROOTS[f"http://127.0.0.1:{port}"] = root
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Debian's Chromium, headless, its microphone a looping sample WAV, an empty profile."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: the Makefile installs Debian's chromium")
    args = CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={sample(SAMPLE).wav}"]
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                       headless=True, executable_path=CHROMIUM, args=args,
                                                       viewport={"width": 1280, "height": 1400})
        try:
            yield browser
        finally:
            browser.close()


def run_all(browser, url: str, name: str, log: list[str]):
    """Open a notebook in JupyterLab and run all its cells, as a user would."""
    page = browser.new_page()
    page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
    page.goto(f"{url}/lab/tree/{name}?reset")  # ?reset: only this notebook, not the last page's layout
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=90_000)  # run-all before the kernel is up does nothing
    page.locator(".jp-Notebook .jp-Cell").first.click()  # a real click: the page may start audio
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return page


WORDS_JS = """() => Array.from(document.querySelectorAll('.dsm-transcript .dsm-word'))
                   .map((e) => e.firstChild.textContent)"""  # each word's own text, not its time subscript


def heard_words(page) -> list[str]:
    return [normalize(w) for w in page.evaluate(WORDS_JS)]


def says(heard: list[str], words: list[str]) -> bool:
    """`words` in a row somewhere in `heard` (the fake microphone loops: any pass will do)."""
    n = len(words)
    return any(heard[i:i + n] == words for i in range(len(heard) - n + 1))


def transcript_has(page, words: list[str]) -> bool:
    return says(heard_words(page), words)


@pytest.mark.timeout(240)
def test_browser_microphone_transcribes_sample(jupyter_lab, chromium, tmp_path):
    clip = sample(SAMPLE)
    expected = normalize(clip.text).split()
    shot = tmp_path / "browser_live_microphone.png"
    console: list[str] = []
    page = run_all(chromium, jupyter_lab, LIVE.name, console)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not transcript_has(page, expected):
        page.wait_for_timeout(500)
    page.screenshot(path=str(shot), full_page=True)
    heard = page.locator(".dsm-transcript").all_inner_texts()
    words = heard_words(page)
    status = page.locator(".dsm-mic-status").all_inner_texts()
    errors = page.locator(".dsm-live-error").all_inner_texts()
    meters = page.locator(".dsm-meter canvas").count()
    page.close()
    if os.environ.get("DSM_LAB_KEEP_SCREENSHOT"):  # refresh the copy kept in bench/results/
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, RECORD)
    assert heard, "no transcript widget in the page"
    assert says(words, expected), f"{clip.text!r} not heard; transcript: {heard}; mic: {status}; " \
                                               f"errors: {errors}; page console: {console[-15:]}"
    assert any(s.startswith("browser: ") and "Hz" in s for s in status), status
    assert meters == 1 and not [line for line in console if line.startswith("pageerror")], console


CANVAS_INK = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
  return ink;
}"""


MARGIN_INK = """(canvas) => {
  const ctx = canvas.getContext("2d");
  const count = (x, y, w, h) => {
    const d = ctx.getImageData(x, y, w, h).data;
    let ink = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
    return ink;
  };
  return Math.min(count(0, 0, canvas.width, 20), count(0, 20, 30, canvas.height - 50));
}"""


@pytest.mark.timeout(240)
def test_attention_viewer_draws_offline_and_follows_its_sliders(jupyter_lab, chromium, tmp_path):
    """Notebook 01 in the page: the attention viewer draws on its canvases (nothing fetched: this machine
    has no network), the step slider redraws the timeline without a round trip and answers the arrow keys,
    and the heatmap carries its title and axes."""
    console: list[str] = []
    page = run_all(chromium, jupyter_lab, DELAYED.name, console)
    viewer = page.locator(".dsm-attention")
    try:
        viewer.first.wait_for(timeout=150_000)
    finally:
        page.screenshot(path=str(tmp_path / "attention_viewer.png"))
    canvases = viewer.first.locator("canvas")
    page.wait_for_function("() => document.querySelector('.dsm-attention canvas')", timeout=30_000)
    timeline, heat = canvases.nth(0), canvases.nth(1)
    before = timeline.evaluate("c => c.toDataURL()")
    assert timeline.evaluate(CANVAS_INK) > 1000 and heat.evaluate(CANVAS_INK) > 1000
    step = viewer.first.locator("input[type=range]").nth(2)
    step.evaluate("(s) => { s.value = 3; s.dispatchEvent(new Event('input')); }")
    page.wait_for_timeout(300)
    assert timeline.evaluate("c => c.toDataURL()") != before
    # The arrow keys move a focused slider, not JupyterLab's cell selection (which took them before).
    active = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
    step.focus()
    cell_before = page.evaluate(active)
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    assert step.evaluate("s => Number(s.value)") == 5
    assert page.evaluate(active) == cell_before
    # The heatmap has a title and axes: ink in its margins, left of and above the pattern.
    assert heat.evaluate(MARGIN_INK) > 200
    viewer.first.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "attention_viewer.png"))
    page.close()
    assert not [line for line in console if line.startswith("pageerror")], console


# Each slider's label and the drill-down table's header cells, as the page lays them out.
EXPLORER_LAYOUT = """() => {
  const labels = Array.from(document.querySelectorAll('.widget-slider .widget-label'))
    .map((e) => ({text: e.textContent, cut: e.scrollWidth > e.clientWidth + 1}));
  const tables = Array.from(document.querySelectorAll('.jp-OutputArea-output table'))
    .map((t) => Array.from(t.querySelectorAll('thead th')).map((h) => h.textContent.trim()));
  const explorer = Array.from(document.querySelectorAll('.widget-html-content table td'))
    .map((td) => td.textContent.trim());
  return {labels, tables, explorer};
}"""


@pytest.mark.timeout(300)
def test_turn_explorer_labels_fit_and_the_drill_down_shows_its_text(jupyter_lab, chromium, tmp_path):
    """Notebook 03 in the page: the explorer's slider labels are whole ("min_silence_s" was cut), its table
    writes every number with three decimals, and the drill-down table leads with the text columns."""
    console: list[str] = []
    page = run_all(chromium, jupyter_lab, TURNS.name, console)
    try:
        page.locator(".widget-slider").nth(1).wait_for(timeout=240_000)
        page.wait_for_timeout(1000)
        layout = page.evaluate(EXPLORER_LAYOUT)
    finally:
        page.screenshot(path=str(tmp_path / "turn_explorer.png"), full_page=True)
        page.close()
    texts = [label["text"] for label in layout["labels"]]
    assert "min_silence_s" in texts and "threshold" in texts, layout["labels"]
    assert not [label for label in layout["labels"] if label["cut"]], layout["labels"]
    numbers = [v for v in layout["explorer"] if v.replace(".", "", 1).isdigit()]
    assert numbers and all(len(v.split(".")[1]) == 3 for v in numbers if "." in v), layout["explorer"]
    drill = next(h for h in layout["tables"] if "said_so_far" in h)
    assert drill.index("said_so_far") < 9 and "transcript_so_far" in drill, drill
    assert not [line for line in console if line.startswith("pageerror")], console


def pause_labels(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('.dsm-annotator .dsm-pause'))"
                         ".map((d) => d.dataset.label + (d.classList.contains('dsm-confirmed') ? '+' : ''))")


@pytest.mark.timeout(240)
def test_annotator_clicks_set_labels_play_a_pause_and_save_the_item(jupyter_lab, chromium, tmp_path):
    """The annotator in the page: a click flips a pause's label, a key undoes and another confirms (the
    notebook does not take them), play fills the audio element with the pause's sound from the kernel,
    and Save writes the labels into the item's JSON on disk."""
    root = Path(jupyter_lab_root(jupyter_lab))
    item = root / "items" / "timer.json"
    console: list[str] = []
    page = run_all(chromium, jupyter_lab, ANNOTATOR_NB, console)
    try:
        page.locator(".dsm-annotator .dsm-pause").nth(1).wait_for(timeout=120_000)
        assert pause_labels(page) == ["hold", "shift"]
        page.locator(".dsm-annotator .dsm-pause").nth(0).click()
        page.wait_for_function("() => document.querySelector('.dsm-pause').dataset.label === 'shift'")
        page.locator(".dsm-annotator .dsm-pause").nth(1).click()
        page.wait_for_function("() => document.querySelectorAll('.dsm-pause')[1].dataset.label === 'hold'")
        assert pause_labels(page) == ["shift+", "hold+"]
        page.keyboard.press("z")  # undo: pause 1 is shift again, unconfirmed
        page.wait_for_function("() => document.querySelectorAll('.dsm-pause')[1].dataset.label === 'shift'")
        assert pause_labels(page) == ["shift+", "shift"]
        page.keyboard.press("c")  # confirm the selected pause (1) as it is
        page.wait_for_function("() => document.querySelectorAll('.dsm-pause')[1].classList.contains('dsm-confirmed')")
        page.locator(".dsm-annotator-play").click()
        page.wait_for_function("() => { const a = document.querySelector('.dsm-annotator-audio');"
                               " return a.src.startsWith('blob:') && a.readyState >= 1; }", timeout=30_000)
        played = page.evaluate("() => { const a = document.querySelector('.dsm-annotator-audio');"
                               " return [a.duration, Number(a.dataset.start), Number(a.dataset.end)]; }")
        page.locator(".dsm-annotator-save").click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and '"confirmed": true' not in item.read_text():
            time.sleep(0.3)
        cells = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length")
    finally:
        page.screenshot(path=str(tmp_path / "annotator.png"), full_page=True)
        page.close()
    saved = json.loads(item.read_text())["pauses"]
    assert [(p["label"], p["confirmed"]) for p in saved] == [("shift", True), ("shift", True)], saved
    duration, start, end = played
    assert abs(duration - (end - start)) < 0.05 and start < saved[1]["start"] < end
    assert cells == 1  # the keys went to the widget, not to the notebook (z would have undone, c copied)
    assert not [line for line in console if line.startswith("pageerror")], console
