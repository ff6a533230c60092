// End-of-turn meter: every head's probability over the last seconds, the policy's threshold and its decisions.
// Plain canvas drawing: nothing to fetch, works offline. The kernel sends a window of points (lab/widgets/live.py).

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

function draw(model, canvas) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const left = 42, right = 110, top = 18, bottom = 24;
  const pw = W - left - right, ph = H - top - bottom;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px sans-serif";
  const times = model.get("times");
  const probs = model.get("probs");
  const horizons = model.get("horizons");
  const now = model.get("now_s");
  const span = model.get("window_s");
  const t0 = Math.max(0, now - span);
  const x = (t) => left + ((t - t0) / span) * pw;
  const y = (p) => top + (1 - p) * ph;
  // axes and grid
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#444"; ctx.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(left, y(p)); ctx.lineTo(left + pw, y(p)); ctx.stroke();
    ctx.fillText(p.toFixed(2), 6, y(p) + 4);
  }
  for (let t = Math.ceil(t0); t <= t0 + span; t += 1) {
    ctx.fillText(`${t}s`, x(t) - 6, H - 8);
  }
  ctx.fillText(model.get("title"), left, 12);
  // decisions: vertical lines where the policy declared end of turn
  ctx.strokeStyle = "#000"; ctx.setLineDash([]);
  for (const d of model.get("decisions")) {
    if (d < t0) continue;
    ctx.beginPath(); ctx.moveTo(x(d), top); ctx.lineTo(x(d), top + ph); ctx.stroke();
  }
  // threshold of the policy's head
  const k = model.get("policy_index");
  ctx.strokeStyle = COLORS[k % COLORS.length]; ctx.setLineDash([5, 4]);
  const th = model.get("threshold");
  ctx.beginPath(); ctx.moveTo(left, y(th)); ctx.lineTo(left + pw, y(th)); ctx.stroke();
  ctx.setLineDash([]);
  // one line per head
  probs.forEach((series, h) => {
    ctx.strokeStyle = COLORS[h % COLORS.length];
    ctx.lineWidth = h === k ? 2.2 : 1.2;
    ctx.beginPath();
    series.forEach((p, i) => {
      const px = x(times[i]), py = y(p);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[h % COLORS.length];
    ctx.fillText(`p_eot ${horizons[h]} s${h === k ? " (policy)" : ""}`, left + pw + 8, top + 12 + 14 * h);
  });
  ctx.fillStyle = "#000";
  ctx.fillText("| decision", left + pw + 8, top + 12 + 14 * probs.length);
  ctx.fillText(`- - threshold ${th}`, left + pw + 8, top + 26 + 14 * probs.length);
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "dsm-meter";
  const canvas = document.createElement("canvas");
  canvas.width = 760; canvas.height = 190;
  box.appendChild(canvas);
  el.appendChild(box);
  const redraw = () => draw(model, canvas);
  model.on("change", redraw);
  redraw();
  return () => model.off("change", redraw);
}

export default { render };
