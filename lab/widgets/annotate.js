// The annotator (lab/widgets/annotate.py): a window of the recording's waveform with the words on it, every
// pause a span (a div over the canvas) coloured by its label. Click a pause: flip hold <-> shift. Keys, with
// the widget focused: h / s set the selected pause's label, c confirms it, n / p (Tab / Shift+Tab) select
// the next / previous pause, z undoes, space plays. Drag on the waveform to choose a region to play. The
// sound comes from the kernel as WAV bytes into an <audio> element: nothing is fetched, it works offline.

const HEIGHT = 170, WORD_BAND = 46;

function button(text, title, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.className = "dsm-annotator-" + text.split(" ")[0].toLowerCase();
  b.onclick = (e) => { e.preventDefault(); onClick(); };
  return b;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "dsm-annotator";
  root.tabIndex = 0;
  const controls = document.createElement("div");
  controls.className = "dsm-controls";
  const where = document.createElement("span");
  const track = document.createElement("div");
  track.className = "dsm-track";
  const canvas = document.createElement("canvas");
  const spans = document.createElement("div");
  const region = document.createElement("div");
  region.className = "dsm-region";
  region.style.display = "none";
  track.append(canvas, spans, region);
  const status = document.createElement("div");
  status.className = "dsm-annotator-status";
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.className = "dsm-annotator-audio";
  let chosen = null; // [start, end] of a dragged region, seconds

  const send = (msg) => model.send(msg);
  const page = (dir) => {
    const v = model.get("view_s"), d = model.get("duration_s");
    const start = Math.min(Math.max(0, model.get("view_start_s") + dir * v * 0.9), Math.max(0, d - v));
    model.set("view_start_s", start);
    model.save_changes();
  };
  const label = (l) => { const i = model.get("selected"); if (i >= 0) send({ type: "label", index: i, label: l }); };
  const select = (step) => {
    const n = model.get("pauses").length;
    if (!n) return;
    const i = Math.min(n - 1, Math.max(0, model.get("selected") + step));
    model.set("selected", i);
    const p = model.get("pauses")[i], v = model.get("view_s"), s = model.get("view_start_s");
    if (p.start < s || p.end > s + v) model.set("view_start_s", Math.max(0, p.start - v * 0.2));
    model.save_changes();
  };
  const play = () => {
    let range = chosen;
    const i = model.get("selected");
    if (!range && i >= 0) {
      const p = model.get("pauses")[i], c = 0.5;
      range = [p.start - c, p.end + c];
    }
    if (!range) range = [model.get("view_start_s"), model.get("view_start_s") + model.get("view_s")];
    send({ type: "play", start: Math.max(0, range[0]), end: Math.min(model.get("duration_s"), range[1]) });
  };

  controls.append(button("◀", "earlier (left arrow)", () => page(-1)), button("▶", "later (right arrow)", () => page(1)),
                  where, button("hold (h)", "the speaker goes on", () => label("hold")),
                  button("shift (s)", "the turn is over", () => label("shift")),
                  button("confirm (c)", "the label is right as it is", () => {
                    const i = model.get("selected"); if (i >= 0) send({ type: "confirm", index: i }); }),
                  button("play (space)", "the dragged region, else the selected pause", play),
                  button("undo (z)", "take back the last change", () => send({ type: "undo" })),
                  button("save", "write the labels into the item's JSON", () => send({ type: "save" })));
  root.append(controls, track, audio, status);
  el.append(root);

  const x = (t) => ((t - model.get("view_start_s")) / model.get("view_s")) * canvas.width;
  const time = (px) => model.get("view_start_s") + (px / canvas.width) * model.get("view_s");

  function draw() {
    const W = Math.max(400, Math.min(1200, el.clientWidth || 900));
    canvas.width = W;
    canvas.height = HEIGHT;
    track.style.width = W + "px";
    track.style.height = HEIGHT + "px";
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, W, HEIGHT);
    const s = model.get("view_start_s"), v = model.get("view_s"), wave = model.get("wave");
    const mid = (HEIGHT - WORD_BAND) / 2, half = mid - 6;
    let amp = 1e-9;
    for (const [a, b] of wave) amp = Math.max(amp, Math.abs(a), Math.abs(b));
    const span = Math.min(v, model.get("duration_s") - s);
    ctx.fillStyle = "#9aa5b1";
    wave.forEach(([a, b], i) => {
      const px = (i / wave.length) * (span / v) * W;
      ctx.fillRect(px, mid - (b / amp) * half, Math.max(1, (span / v) * W / wave.length), ((b - a) / amp) * half + 1);
    });
    ctx.font = "12px sans-serif";
    ctx.fillStyle = "#222";
    let lastRight = -1e9, row = 0;
    for (const w of model.get("words")) {
      if (w.end < s || w.start > s + v) continue;
      const px = x(w.start);
      row = px < lastRight + 4 ? 1 - row : 0; // two rows, so that short neighbours do not overprint
      ctx.fillRect(px, HEIGHT - WORD_BAND, 1, 6);
      ctx.fillText(w.text, px + 2, HEIGHT - WORD_BAND + 18 + 16 * row);
      lastRight = Math.max(lastRight, px + ctx.measureText(w.text).width + 2);
    }
    ctx.fillStyle = "#666";
    const stepS = v > 60 ? 10 : v > 20 ? 5 : 1;
    for (let t = Math.ceil(s / stepS) * stepS; t <= s + v; t += stepS) {
      ctx.fillRect(x(t), 0, 1, 5);
      ctx.fillText(`${t}s`, x(t) + 2, 12);
    }
    where.textContent = `${s.toFixed(1)}–${Math.min(s + v, model.get("duration_s")).toFixed(1)} s of ` +
                        `${model.get("duration_s").toFixed(1)} s`;
    drawSpans();
  }

  function drawSpans() {
    spans.replaceChildren();
    const s = model.get("view_start_s"), v = model.get("view_s"), sel = model.get("selected");
    model.get("pauses").forEach((p, i) => {
      if (p.end < s || p.start > s + v) return;
      const d = document.createElement("div");
      d.className = `dsm-pause dsm-${p.label}` + (p.confirmed ? " dsm-confirmed" : "") + (i === sel ? " dsm-selected" : "");
      d.dataset.index = i;
      d.dataset.label = p.label;
      d.style.left = Math.max(0, x(p.start)) + "px";
      d.style.width = Math.max(3, x(p.end) - Math.max(0, x(p.start))) + "px";
      d.style.height = (HEIGHT - WORD_BAND) + "px";
      const conf = p.confidence === undefined ? "" : ` ${Math.round(100 * p.confidence)}%`;
      d.title = `${p.label}${conf}${p.confirmed ? ", confirmed" : ""}${p.reason ? ": " + p.reason : ""} ` +
                `(${p.start.toFixed(2)}-${p.end.toFixed(2)} s)`;
      d.textContent = p.label + (p.confirmed ? " ✓" : "");
      d.onmousedown = (e) => e.stopPropagation(); // a click on a pause is not the start of a dragged region
      d.onclick = (e) => {
        e.stopPropagation();
        root.focus();
        send({ type: "label", index: i, label: p.label === "hold" ? "shift" : "hold" });
      };
      spans.append(d);
    });
    if (chosen) {
      region.style.display = "";
      region.style.left = x(chosen[0]) + "px";
      region.style.width = Math.max(2, x(chosen[1]) - x(chosen[0])) + "px";
      region.style.height = (HEIGHT - WORD_BAND) + "px";
    } else {
      region.style.display = "none";
    }
  }

  let dragFrom = null;
  track.onmousedown = (e) => {
    root.focus();
    dragFrom = e.offsetX;
  };
  track.onmousemove = (e) => {
    if (dragFrom === null || Math.abs(e.offsetX - dragFrom) < 4) return;
    const a = time(Math.min(dragFrom, e.offsetX)), b = time(Math.max(dragFrom, e.offsetX));
    chosen = [a, b];
    drawSpans();
  };
  track.onmouseup = (e) => {
    if (dragFrom !== null && Math.abs(e.offsetX - dragFrom) < 4) { chosen = null; drawSpans(); }
    dragFrom = null;
  };

  const KEYS = { h: () => label("hold"), s: () => label("shift"), z: () => send({ type: "undo" }),
                 c: () => { const i = model.get("selected"); if (i >= 0) send({ type: "confirm", index: i }); },
                 n: () => select(1), p: () => select(-1), " ": play, ArrowLeft: () => page(-1),
                 ArrowRight: () => page(1) };
  // JupyterLab's notebook takes single keys in command mode (s: save, z: undo a cell edit...): the widget,
  // when focused, keeps them from the page.
  root.addEventListener("keydown", (e) => {
    const key = e.key === "Tab" ? (e.shiftKey ? "p" : "n") : e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (!(key in KEYS) || e.ctrlKey || e.metaKey || e.altKey) return;
    e.preventDefault();
    e.stopPropagation();
    KEYS[key]();
  });

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "audio" || !buffers || !buffers.length) return;
    const view = buffers[0];
    const blob = new Blob([view.buffer ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : view],
                          { type: "audio/wav" });
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.src = URL.createObjectURL(blob);
    audio.dataset.start = msg.start;
    audio.dataset.end = msg.end;
    audio.play().catch(() => {}); // a page that has not been clicked may refuse to play: the controls remain
  });
  const showStatus = () => { status.textContent = model.get("status"); };
  model.on("change:wave", draw);
  model.on("change:view_start_s", draw);
  model.on("change:view_s", draw);
  model.on("change:pauses", drawSpans);
  model.on("change:selected", drawSpans);
  model.on("change:status", showStatus);
  draw();
  showStatus();
}

export default { render };
