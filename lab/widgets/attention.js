// Attention viewer (lab/widgets/attention.py): layer, head and step sliders; the step's attention row drawn
// over the audio timeline with the delay D marked, and the head's whole (steps x keys) pattern beside it.
// Canvas only: nothing is fetched, it works offline.

const SLIDER_KEYS = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10,
                      Home: "home", End: "end" };

function slider(label, max, value, onInput) {
  const wrap = document.createElement("label");
  const input = document.createElement("input");
  input.type = "range"; input.min = 0; input.max = Math.max(0, max); input.value = value;
  const out = document.createElement("span");
  out.textContent = value;
  input.oninput = () => { out.textContent = input.value; onInput(Number(input.value)); };
  // In JupyterLab a notebook handler takes the arrow keys from a focused slider (it prevents their default
  // action to move the cell selection): move the slider here and keep those keys from the page.
  input.addEventListener("keydown", (e) => {
    const delta = SLIDER_KEYS[e.key];
    if (delta === undefined) return;
    e.preventDefault();
    e.stopPropagation();
    const max = Number(input.max), now = Number(input.value);
    const next = delta === "home" ? 0 : delta === "end" ? max : Math.min(max, Math.max(0, now + delta));
    if (next !== now) { input.value = next; input.oninput(); }
  });
  wrap.append(`${label} `, input, out);
  wrap.sync = (v, m) => { input.max = Math.max(0, m); input.value = v; out.textContent = v; };
  return wrap;
}

function matrixOf(model) {
  const dv = model.get("matrix"); // a DataView over float32 bytes
  if (!dv || !dv.byteLength) return null;
  return new Float32Array(dv.buffer, dv.byteOffset, dv.byteLength / 4);
}

function drawTimeline(model, canvas) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 40, right = 10, top = 20, bottom = 42;
  const pw = W - left - right, ph = H - top - bottom;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px sans-serif";
  const fr = model.get("frame_rate"), T = model.get("n_steps"), step = model.get("step");
  const D = model.get("delay_frames"), shift = model.get("frame_shift");
  const end = Math.max(model.get("duration_s"), (T + 1) / fr);
  const x = (t) => left + (t / end) * pw;
  // waveform outline
  const wave = model.get("wave");
  ctx.fillStyle = "#ccc";
  const mid = top + ph / 2;
  let amp = 1e-9;
  for (const [a, b] of wave) amp = Math.max(amp, Math.abs(a), Math.abs(b));
  wave.forEach(([a, b], i) => {
    const px = left + (i / wave.length) * pw * (model.get("duration_s") / end);
    ctx.fillRect(px, mid - (b / amp) * ph * 0.45, Math.max(1, pw / wave.length), ((b - a) / amp) * ph * 0.45 + 1);
  });
  // the delay: the last D frames before now are heard but not yet written
  const now = (step + 1) / fr;
  ctx.fillStyle = "rgba(255,127,14,0.15)";
  ctx.fillRect(x(now - D / fr), top, x(now) - x(now - D / fr), ph);
  ctx.strokeStyle = "#000"; ctx.beginPath(); ctx.moveTo(x(now), top); ctx.lineTo(x(now), top + ph); ctx.stroke();
  ctx.fillStyle = "#000";
  ctx.fillText(`now (step ${step})`, x(now) + 3, top + 10);
  ctx.fillStyle = "#c55a00";
  ctx.fillText(`D = ${D} frames`, x(now - D / fr) + 2, top + 22);
  // attention row: each key at the audio frame that step saw
  const m = matrixOf(model);
  if (m && step < T) {
    const row = m.subarray(step * T, (step + 1) * T);
    let peak = 1e-9;
    for (const v of row) peak = Math.max(peak, v);
    ctx.fillStyle = "rgba(31,119,180,0.75)";
    for (let k = 0; k < T; k++) {
      const t0 = (k - shift) / fr;
      const h = (row[k] / peak) * ph;
      ctx.fillRect(x(t0), top + ph - h, Math.max(1, x(t0 + 1 / fr) - x(t0) - 1), h);
    }
    ctx.fillStyle = "#1f77b4";
    ctx.fillText(`attention (peak ${peak.toFixed(3)})`, left, 12);
  }
  // words and time axis
  ctx.fillStyle = "#2ca02c";
  ctx.font = "13px sans-serif";
  for (const w of model.get("words")) ctx.fillText(w.text, x(w.start), top + ph + 16);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#444";
  for (let t = 0; t <= end; t += 1) ctx.fillText(`${t}s`, x(t) - 4, H - 6);
}

// The heatmap sits inside margins that carry its title and axes: rows are query steps (the step that
// looks), columns key steps (the steps it looks at); causal, so everything is on or left of the diagonal.
const HEAT = { left: 34, right: 6, top: 22, bottom: 30 };

function drawMatrix(model, canvas) {
  const ctx = canvas.getContext("2d");
  const T = model.get("n_steps"), m = matrixOf(model), step = model.get("step");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!m || !T) return;
  const pw = canvas.width - HEAT.left - HEAT.right, ph = canvas.height - HEAT.top - HEAT.bottom;
  const img = ctx.createImageData(T, T);
  for (let q = 0; q < T; q++) {
    let peak = 1e-9;
    for (let k = 0; k < T; k++) peak = Math.max(peak, m[q * T + k]);
    for (let k = 0; k < T; k++) {
      const v = Math.sqrt(m[q * T + k] / peak); // sqrt: weak attention stays visible
      const i = 4 * (q * T + k);
      img.data[i] = 255 - 224 * v; img.data[i + 1] = 255 - 136 * v; img.data[i + 2] = 255 - 75 * v;
      img.data[i + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = T; off.height = T;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, HEAT.left, HEAT.top, pw, ph);
  ctx.strokeStyle = "#888"; ctx.strokeRect(HEAT.left, HEAT.top, pw, ph);
  ctx.strokeStyle = "#d62728";
  const y = HEAT.top + ((step + 0.5) / T) * ph;
  ctx.beginPath(); ctx.moveTo(HEAT.left, y); ctx.lineTo(HEAT.left + pw, y); ctx.stroke();
  ctx.fillStyle = "#000"; ctx.font = "12px sans-serif";
  ctx.fillText(`head ${model.get("head")}, layer ${model.get("layer")}: all steps`, HEAT.left, 14);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#444";
  ctx.fillText("0", HEAT.left - 10, HEAT.top + 9);  // both axes start at step 0, top left
  ctx.fillText(`${T - 1}`, HEAT.left + pw - 14, HEAT.top + ph + 12);
  ctx.fillText(`${T - 1}`, 4, HEAT.top + ph);
  ctx.fillText("key step (looked at) \u2192", HEAT.left + 8, canvas.height - 4);
  ctx.save(); ctx.translate(8, HEAT.top + 22); ctx.rotate(Math.PI / 2);  // reads downwards, as the steps go
  ctx.fillText("query step \u2192", 0, 0);
  ctx.restore();
  ctx.fillStyle = "#d62728"; ctx.fillText(`${step}`, HEAT.left + pw - 18, Math.max(HEAT.top + 10, y - 3));
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "dsm-attention";
  // No JupyterLab shortcut from inside the viewer ("d d" on a focused slider must not delete the cell):
  // Lumino skips its shortcuts for events from inside an element carrying this attribute.
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  const controls = document.createElement("div");
  controls.className = "dsm-controls";
  const set = (name) => (v) => { model.set(name, v); model.save_changes(); };
  const sLayer = slider("layer", model.get("n_layers") - 1, model.get("layer"), set("layer"));
  const sHead = slider("head", model.get("n_heads") - 1, model.get("head"), set("head"));
  const sStep = slider("step", model.get("n_steps") - 1, model.get("step"), (v) => { set("step")(v); redraw(); });
  controls.append(sLayer, sHead, sStep);
  const row = document.createElement("div");
  row.style.display = "flex"; row.style.gap = "8px"; row.style.flexWrap = "wrap";
  const timeline = document.createElement("canvas");
  timeline.width = 720; timeline.height = 220;
  timeline.style.flex = "none";
  const heat = document.createElement("canvas");
  heat.width = 240; heat.height = 240;
  heat.style.flex = "none";
  heat.title = "query step (rows) x key step (columns); red: the selected step";
  row.append(timeline, heat);
  root.append(controls, row);
  el.appendChild(root);
  const redraw = () => {
    sLayer.sync(model.get("layer"), model.get("n_layers") - 1);
    sHead.sync(model.get("head"), model.get("n_heads") - 1);
    sStep.sync(model.get("step"), model.get("n_steps") - 1);
    drawTimeline(model, timeline);
    drawMatrix(model, heat);
  };
  model.on("change", redraw);
  redraw();
  return () => model.off("change", redraw);
}

export default { render };
