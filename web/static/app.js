// Live feed page: draws frames from the WebSocket feed on a canvas with the detection
// boxes, shows counters, sends authenticated control messages, lists recent detections.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const canvas = $("view"), ctx = canvas.getContext("2d");
  // Box colours follow darknet's get_color spread over 80 classes, as the server-side
  // snapshot (?boxes=1) draws them, so both show a class in the same colour.
  const ramp = [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]];
  function classRGB(id, classes = 80) {
    const offset = (((id * 123457) % classes) + classes) % classes;
    return [2, 1, 0].map((x) => {
      let ratio = offset / classes * 5;
      const i = Math.floor(ratio), j = Math.min(i + 1, 5);
      ratio -= i;
      return Math.floor(((1 - ratio) * ramp[i][x] + ratio * ramp[j][x]) * 255);
    });
  }
  const colorFor = (id) => "rgb(" + classRGB(id).join(",") + ")";
  const textFor = (id) => { const [r, g, b] = classRGB(id); return 0.299 * r + 0.587 * g + 0.114 * b > 128 ? "#101010" : "#ffffff"; };

  // state is read by the browser test too.
  const state = window.feedState = {
    frames: 0, lastId: null, connected: false, reconnects: 0, controlAllowed: false,
  };
  let ws = null, attempt = 0, meta = null, decoding = false, lastBitmap = null, lastMeta = null;
  const arrivals = [];

  // --- connection with exponential backoff -------------------------------------------
  function setConn(cls, text) { const c = $("conn"); c.className = "pill " + cls; c.textContent = text; }

  function connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    setConn(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
    ws = new WebSocket(url);
    ws.binaryType = "blob";
    ws.onmessage = onMessage;
    ws.onclose = () => {
      state.connected = false;
      ws = null;
      meta = null;
      const delay = Math.min(8000, 500 * 2 ** attempt) * (0.8 + 0.4 * Math.random());
      attempt = Math.min(attempt + 1, 10);
      state.reconnects++;
      setConn("reconnecting", "reconnecting in " + (delay / 1000).toFixed(1) + " s");
      $("overlay").hidden = false;
      $("overlay").textContent = "connection lost, reconnecting…";
      setTimeout(connect, delay);
    };
  }

  function onMessage(ev) {
    if (typeof ev.data !== "string") { onImage(ev.data); return; }
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    switch (m.type) {
      case "hello":
        attempt = 0;
        state.connected = true;
        state.controlAllowed = m.control;
        setConn("live", "live");
        $("version").textContent = "agent " + (m.version || "");
        $("overlay").textContent = "waiting for frames…";
        updateControls();
        break;
      case "frame": meta = m; break;
      case "control_ok": controlMsg("applied", "ok"); if (m.status) showStatus(m.status); break;
      case "error": controlMsg(m.error, "err"); break;
    }
  }

  // onImage decodes the JPEG that follows a frame's metadata; while one decodes, newer
  // frames replace older ones so a slow tab never falls behind.
  let waiting = null;
  function onImage(blob) {
    if (!meta) return;
    const m = meta; meta = null;
    if (decoding) { waiting = [blob, m]; return; }
    decoding = true;
    createImageBitmap(blob).then((bmp) => {
      render(bmp, m);
    }).catch(() => {}).finally(() => {
      decoding = false;
      if (waiting) { const [b, wm] = waiting; waiting = null; meta = wm; onImage(b); }
    });
  }

  function render(bmp, m) {
    if (lastBitmap) lastBitmap.close();
    lastBitmap = bmp; lastMeta = m;
    draw();
    state.frames++; state.lastId = m.id;
    $("overlay").hidden = true;
    const now = performance.now();
    arrivals.push(now);
    while (arrivals.length && now - arrivals[0] > 2000) arrivals.shift();
    counters(m);
  }

  // draw paints the last frame at the canvas's displayed resolution (so labels stay
  // sharp when a small frame is scaled up) and the boxes over it, scaled alike.
  function draw() {
    const bmp = lastBitmap, m = lastMeta;
    if (!bmp) return;
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(bmp.width, Math.round(canvas.clientWidth * dpr));
    const scale = cw / bmp.width, ch = Math.round(bmp.height * scale);
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    state.scale = scale;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bmp, 0, 0, cw, ch);
    if (!$("showBoxes").checked) return;
    const lw = Math.max(2, Math.round(3 * dpr));
    const font = Math.round(13 * dpr * Math.max(1, Math.min(scale, 2) / 1.5));
    ctx.font = "600 " + font + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    for (const d of m.detections || []) {
      const [x1, y1, x2, y2] = d.box.map((v) => v * scale), col = colorFor(d.class_id);
      ctx.strokeStyle = col; ctx.lineWidth = lw;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const text = d.class + " " + Math.round(d.score * 100) + "%";
      const tw = ctx.measureText(text).width + 10, th = font + 8;
      const ty = y1 - lw / 2 - th >= 0 ? y1 - lw / 2 - th : y1 + lw / 2;
      ctx.fillStyle = col; ctx.fillRect(x1 - lw / 2, ty, tw, th);
      ctx.fillStyle = textFor(d.class_id); ctx.fillText(text, x1 - lw / 2 + 5, ty + 4);
    }
  }
  window.addEventListener("resize", draw);

  const fmt = (v, digits, unit) => (v === undefined || v === null) ? "–" : Number(v).toFixed(digits) + (unit || "");
  function counters(m) {
    const s = m.stats || {};
    $("c-source").textContent = fmt(s.source_fps, 1);
    $("c-detect").textContent = fmt(s.detect_fps, 1);
    $("c-infer").textContent = fmt(s.inference_ms, 1, " ms");
    $("c-latency").textContent = fmt(s.latency_ms, 1, " ms");
    $("c-dropped").textContent = s.dropped ?? "–";
    $("c-viewers").textContent = m.viewers ?? "–";
    $("c-frames").textContent = state.frames;
    $("c-feedfps").textContent = arrivals.length > 1
      ? ((arrivals.length - 1) * 1000 / (arrivals[arrivals.length - 1] - arrivals[0])).toFixed(1) : "–";
    $("frameInfo").textContent = "frame " + m.id + " · " + m.width + "×" + m.height + " · " +
      (m.detections || []).length + " detections";
  }

  $("showBoxes").addEventListener("change", draw);

  // --- control ------------------------------------------------------------------------
  const tokenInput = $("token");
  tokenInput.value = sessionStorage.getItem("pynq-token") || "";
  tokenInput.addEventListener("input", () => { sessionStorage.setItem("pynq-token", tokenInput.value); updateControls(); });
  let paused = false, editing = false;

  function updateControls() {
    const ok = state.controlAllowed && tokenInput.value !== "";
    for (const id of ["apply", "pause"]) $(id).disabled = !ok;
    if (!state.controlAllowed) controlMsg("control disabled on this agent", "muted");
    else if (!tokenInput.value) controlMsg("enter the token to change settings", "muted");
    else controlMsg("", "muted");
  }

  function controlMsg(text, cls) { const c = $("controlMsg"); c.textContent = text; c.className = cls; }

  function send(fields) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { controlMsg("not connected", "err"); return; }
    if (!tokenInput.value) { controlMsg("enter the token first", "err"); return; }
    ws.send(JSON.stringify(Object.assign({ type: "control", token: tokenInput.value }, fields)));
    controlMsg("sent…", "muted");
  }

  const thresh = $("thresh");
  thresh.addEventListener("input", () => { editing = true; $("threshOut").textContent = Number(thresh.value).toFixed(2); });
  thresh.addEventListener("change", () => { editing = false; if (tokenInput.value) send({ thresh: Number(thresh.value) }); });
  $("apply").addEventListener("click", () => {
    const classes = $("classes").value.split(",").map((s) => s.trim()).filter(Boolean);
    send({ thresh: Number(thresh.value), classes });
  });
  $("pause").addEventListener("click", () => send({ paused: !paused }));

  // --- status, telemetry, recent detections (polled) -----------------------------------
  function showStatus(st) {
    if (!editing && typeof st.thresh === "number") {
      thresh.value = st.thresh; $("threshOut").textContent = st.thresh.toFixed(2);
    }
    paused = !!st.paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    // Verification images (pynqctl verify) share the engine with the feed, which keeps
    // running: the pill says so while they come in.
    const ver = st.extra && st.extra.verification;
    const verifying = !!(ver && ver.active);
    if (state.connected) setConn(paused || st.source_error ? "reconnecting" : "live",
      (paused ? "live · paused" : "live") + (st.source_error ? " · source failing" : "") +
      (verifying ? " · verifying (frames interleaved)" : ""));
    // A failing source is said where the frames would be (the last frame, if any, stays).
    if (st.source_error && state.connected && !state.frames) {
      $("overlay").hidden = false;
      $("overlay").textContent = "frame source failing, retrying: " + st.source_error;
    } else if (!st.source_error && !state.frames && state.connected) {
      $("overlay").textContent = "waiting for frames…";
    }
    if (document.activeElement !== $("classes")) $("classes").value = (st.classes || []).join(", ");
    const tel = st.extra && st.extra.telemetry;
    $("telemetryCard").hidden = !tel;
    if (tel) showTelemetry(tel);
  }

  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? prefix + "." + k : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out); else out.push([key, v]);
    }
    return out;
  }

  // Human labels for the agent's telemetry keys (agent/telemetry StatusExtra); an unknown
  // key shows as it is.
  const telemetryLabels = [
    [/^runqueue_waits$/, () => "Run-queue waits"],
    [/^runqueue_(p50|p99|mean)_us$/, (m) => "Run-queue wait, " + m[1] + " (µs)"],
    [/^offcpu_(.+)_last_frame_ms$/, (m) => "Off-CPU, " + m[1] + " thread, last frame (ms)"],
    [/^offcpu_(.+)_per_frame_ms$/, (m) => "Off-CPU, " + m[1] + " thread, per frame (ms)"],
    [/^fpga_loads$/, () => "FPGA loads seen"],
    [/^fpga_load_last_ms$/, () => "Last FPGA load (ms)"],
    [/^irq_gic(\d+)$/, (m) => "Interrupts, GIC " + m[1]],
    [/^irq(\d+)$/, (m) => "Interrupts, IRQ " + m[1]],
    [/^(.+)_unavailable$/, (m) => "Probe " + m[1] + " unavailable"],
  ];

  function telemetryLabel(key) {
    for (const [re, label] of telemetryLabels) {
      const m = key.match(re);
      if (m) return label(m);
    }
    return key;
  }

  function showTelemetry(tel) {
    const table = $("telemetry");
    table.replaceChildren();
    const rows = typeof tel === "object" ? flatten(tel, "", []) : [["telemetry", tel]];
    for (const [k, v] of rows) {
      const tr = table.insertRow();
      if (typeof v === "string" && v.length > 24) {
        // An unavailable probe's reason is a sentence: give it the whole row.
        tr.className = "note";
        const td = tr.insertCell();
        td.colSpan = 2;
        td.textContent = telemetryLabel(k) + ": " + v;
        continue;
      }
      tr.insertCell().textContent = telemetryLabel(k);
      tr.insertCell().textContent = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);
    }
  }

  async function pollStatus() {
    try {
      const r = await fetch("api/status", { cache: "no-store" });
      if (r.ok) showStatus(await r.json());
    } catch (e) { /* offline: the feed shows reconnecting */ }
  }

  async function pollRecent() {
    try {
      // The browser revalidates with the ETag: 304 while no detection was added.
      const r = await fetch("api/detections?thumbs=1&limit=12", { cache: "no-cache" });
      if (!r.ok || r.status === 304) return;
      const list = await r.json();
      const ul = $("recent");
      ul.replaceChildren();
      if (!list.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "none yet"; ul.append(li); return; }
      for (const d of list) {
        const li = document.createElement("li");
        const img = document.createElement("img"); img.src = d.thumb; img.alt = d.class;
        const text = document.createElement("div");
        const when = new Date(d.time);
        const a = document.createElement("div");
        a.innerHTML = "<span class=score></span> <span class=cls></span>";
        a.querySelector(".score").textContent = Math.round(d.score * 100) + "%";
        a.querySelector(".cls").textContent = d.class;
        const b = document.createElement("div"); b.className = "muted";
        b.textContent = "frame " + d.frame_id + " · " + (isNaN(when) ? "" : when.toLocaleTimeString([], { hour12: false }));
        text.append(a, b);
        li.append(img, text);
        ul.append(li);
      }
    } catch (e) { /* offline */ }
  }

  setInterval(pollStatus, 2000);
  setInterval(pollRecent, 2000);
  pollStatus(); pollRecent();
  connect();
})();
