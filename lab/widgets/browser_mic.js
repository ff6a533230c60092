// The page's microphone, streamed to the kernel as int16 PCM (lab/widgets/browser.py is the kernel side).
// Capture: getUserMedia (no echo cancellation, noise suppression or auto gain) -> AudioWorklet, loaded from a
// Blob URL so that nothing is fetched from anywhere -> blocks of `block_ms` -> model.send(content, [buffer]).

const WORKLET = `
class DsmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.block = options.processorOptions.block;
    this.buf = new Float32Array(this.block);
    this.n = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      this.buf[this.n++] = ch[i];
      if (this.n === this.block) {
        this.port.postMessage(this.buf, [this.buf.buffer]);
        this.buf = new Float32Array(this.block);
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor("dsm-capture", DsmCapture);
`;

function toInt16(f32) {
  const out = new Int16Array(f32.length);
  for (let i = 0; i < f32.length; i++) {
    const v = Math.max(-1, Math.min(1, f32[i]));
    out[i] = v < 0 ? v * 32768 : v * 32767;
  }
  return out;
}

// One capture per widget model, whatever the number of views showing it.
class Capture {
  constructor(model) {
    this.model = model;
    this.seq = 0;
    this.level = -120;
    this.listeners = new Set();
  }
  status(s, error = "") {
    this.model.set("page_status", s);
    this.model.set("page_error", error);
    this.model.save_changes();
    this.listeners.forEach((f) => f());
  }
  fail(message) {
    this.model.send({ type: "error", message });
    this.status("error", message);
    this.stop(false);
  }
  async start() {
    if (this.ctx) return;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.fail("this page cannot use a microphone: not a secure context (use https or localhost); " +
                "use the file source instead");
      return;
    }
    this.status("starting");
    this.seq = 0; // numbered per capture: the kernel puts the blocks back in order by (capture, seq)
    this.captureId = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      this.media = await navigator.mediaDevices.getUserMedia({ audio: this.model.get("constraints") });
    } catch (e) {
      this.fail(`no microphone: ${e.name}: ${e.message}; use the file source instead`);
      return;
    }
    try {
      this.ctx = new AudioContext(); // the device's own rate: the kernel resamples
      const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
      await this.ctx.audioWorklet.addModule(url);
      URL.revokeObjectURL(url);
      const block = Math.max(128, Math.round((this.ctx.sampleRate * this.model.get("block_ms")) / 1000));
      this.node = new AudioWorkletNode(this.ctx, "dsm-capture", { processorOptions: { block } });
      this.node.port.onmessage = (e) => this.send(e.data);
      this.source = this.ctx.createMediaStreamSource(this.media);
      this.source.connect(this.node);
      if (this.ctx.state === "suspended") await this.ctx.resume();
      const track = this.media.getAudioTracks()[0];
      this.model.set("device_label", track ? track.label : "microphone");
      this.model.set("sample_rate", this.ctx.sampleRate);
      this.status(this.ctx.state === "running" ? "capturing" : "suspended: click Start to allow audio");
    } catch (e) {
      this.fail(`audio capture failed: ${e.name}: ${e.message}`);
    }
  }
  send(f32) {
    let sum = 0;
    for (let i = 0; i < f32.length; i++) sum += f32[i] * f32[i];
    this.level = 10 * Math.log10(sum / f32.length + 1e-12);
    const pcm = toInt16(f32);
    const rate = this.ctx ? this.ctx.sampleRate : 0;
    const content = { type: "pcm", dtype: "int16", sample_rate: rate, seq: this.seq++, capture: this.captureId };
    this.model.send(content, undefined, [pcm.buffer]);
    this.listeners.forEach((f) => f());
  }
  stop(report = true) {
    if (this.source) this.source.disconnect();
    if (this.node) this.node.port.onmessage = null;
    if (this.media) this.media.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
    this.ctx = this.node = this.source = this.media = null;
    if (report) this.status("stopped");
  }
}

// Keyed by the widget's own id: anywidget hands initialize() and each render() different model wrappers.
const captures = new Map();

function capture(model) {
  const key = model.get("key");
  if (!captures.has(key)) captures.set(key, new Capture(model));
  return captures.get(key);
}

function initialize({ model }) {
  const c = capture(model);
  const follow = () => (model.get("capturing") ? c.start() : c.stop());
  model.on("change:capturing", follow);
  if (model.get("capturing")) follow();
  return () => { c.stop(false); captures.delete(model.get("key")); };
}

function render({ model, el }) {
  const c = capture(model);
  const root = document.createElement("div");
  root.className = "dsm-browser-mic";
  const button = document.createElement("button");
  const line = document.createElement("span");
  line.className = "dsm-mic-line";
  root.append(button, line);
  el.appendChild(root);
  const draw = () => {
    const on = model.get("capturing");
    button.textContent = on ? "Stop microphone" : "Start microphone";
    const err = model.get("page_error");
    const rate = model.get("sample_rate");
    line.textContent = err ? err
      : `${model.get("page_status")} · ${model.get("device_label") || "?"} · ${rate || "?"} Hz · ` +
        `${c.seq} blocks sent · level ${c.level.toFixed(0)} dBFS`;
    line.classList.toggle("dsm-error", Boolean(err));
  };
  button.onclick = async () => {
    if (c.ctx && c.ctx.state === "suspended") { await c.ctx.resume(); c.status("capturing"); return; }
    model.set("capturing", !model.get("capturing"));
    model.save_changes();
  };
  let last = 0;
  const throttled = () => { const now = performance.now(); if (now - last > 200) { last = now; draw(); } };
  c.listeners.add(throttled);
  model.on("change", draw);
  if (!model.get("page_status")) { model.set("page_status", "shown"); model.save_changes(); }
  draw();
  return () => { c.listeners.delete(throttled); model.off("change", draw); };
}

export default { initialize, render };
