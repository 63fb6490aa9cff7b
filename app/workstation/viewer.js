  // The viewer (part of the workstation bundle, see workstation.js): study load and image identity (placeholder
  // while loading), decoding, VOI window, view transform, the frame (image + overlays + HUD), pointer input.
  // ------------------------------------------------------------------ study load
  function loadValue(v) {
    if (!v || typeof v !== "object" || !v.image) {
      S.value = null; S.sessionId = null; S.studyKey = null; S.sentences = []; S.boxes = []; S.frames = []; S.img = null;
      S.pngKey = null;
      loadingEl.textContent = "No study open"; loadingEl.hidden = false;
      renderReport(); markDirty();
      return;
    }
    const newStudy = v.study_key !== S.studyKey || v.session_id !== S.sessionId;
    S.value = v;
    S.sessionId = v.session_id;
    S.studyKey = v.study_key;
    S.readonly = !!v.readonly;
    const opts = v.options || {};
    S.idleMs = opts.idle_ms || IDLE_MS_DEFAULT;
    S.sentences = (v.sentences || []).map((s) => ({
      id: String(s.id), section: s.section || "findings", region: s.region, label: s.label, text: s.text || "",
      confidence: s.confidence, observation_box: s.observation_box || null, trajectory: s.trajectory || [],
      status: s.status || "pending", final_text: s.final_text != null ? s.final_text : (s.text || ""),
      evidence_of: s.evidence_of != null ? String(s.evidence_of) : null,
    }));
    S.confidenceCalibrated = !!v.confidence_calibrated;
    S.findingProb = {};
    for (const f of v.findings || []) if (f && f.label != null) S.findingProb[f.label] = +f.probability;
    S.boxes = (v.boxes || []).map((b) => ({
      id: String(b.id), sentence_id: b.sentence_id != null ? String(b.sentence_id) : null, label: b.label,
      x_min: +b.x_min, y_min: +b.y_min, x_max: +b.x_max, y_max: +b.y_max, status: b.status || "pending",
      orig: [+b.x_min, +b.y_min, +b.x_max, +b.y_max], also: (b.also || []).map(String),
    }));
    if (newStudy) {
      // Patient safety: the previous study's pixels go now, not when the new image has decoded.
      S.img = null; S.pngKey = null; baseKey = "";
      S.openedAt = performance.now();
      S.painted = false; S.paintedAt = 0; S.refused = {};
      S.selectedSentence = null; S.selectedBox = null; S.activeSentence = null; S.editing = null; S.adding = null;
      S.playing = false; S.frame = -1; S.frameT = 0; S.undo = []; S.firstTouch = {}; S.shownAt = nowTs();
      S.mode = null; S.measure = null; S.answerBox = null; S.askCount = 0;
      askAnswer.textContent = ""; askQuestion.textContent = ""; askInput.value = "";
      const t = performance.now();
      S.timing = { active: 0, idle: 0, hidden: 0, last: t, lastInput: t, state: document.hidden ? "hidden" : "active" };
    }
    loadImage(v);   // first: the pixels' fetch runs while the report is built
    applyQueuedDecisions();
    buildFrames();
    renderReport();
    updateToolbar();
  }
  function loadImage(v) {
    const pngKey = imageKey(v);
    if (pngKey === S.pngKey) { markDirty(); return; }
    S.pngKey = pngKey;
    showImageState(`${S.studyKey || ""} — loading image…`);
    const loadStarted = performance.now();
    decodeImage(v.image, S.studyKey).then(async (img) => {
      if (S.pngKey === pngKey) S.imageLoadMs = performance.now() - loadStarted;
      if (S.imageDelayMs) await sleep(S.imageDelayMs);
      // only the image of the study that is open now is ever shown
      if (S.pngKey !== pngKey || img.studyKey !== S.studyKey) return;
      S.img = img;
      applyWindow(img.window.center, img.window.width, false);
      S.invert = false;
      loadingEl.hidden = true;
      renderHead();
      fitView();
      markDirty();
    }).catch((e) => {
      if (S.pngKey !== pngKey) return;
      showImageState(`${S.studyKey || ""} — the image failed to load: ${e.message}`);
      setStatus("✗ image: " + e.message, "err");
    });
  }
  function showImageState(text) {
    loadingEl.textContent = text;
    loadingEl.hidden = false;
    renderHead();
    markDirty();
  }
  // The image on screen belongs to the open study (the payload names its study; the decoded image keeps it).
  const imageIsCurrent = () => !!S.img && S.img.studyKey === S.studyKey && S.studyKey != null;
  // Which image a value means: its study and its URL (study key + hash of the pixels) or its inline PNG.
  function imageKey(v) {
    const im = v.image;
    const pixels = im.url ? "url:" + im.url
      : (im.png_b64 ? im.png_b64.length + ":" + im.png_b64.slice(0, 64) + im.png_b64.slice(-64) : "");
    return (im.study_key || v.study_key) + "|" + pixels;
  }

  async function decodeImage(im, expectedStudy) {
    if (im.study_key != null && im.study_key !== expectedStudy)
      throw new Error(`the image is of study ${im.study_key}, not ${expectedStudy}: not shown`);
    if (im.url) return fetchImage(im, expectedStudy);
    if (im.encoding && im.encoding !== "rgb16") throw new Error("unsupported encoding " + im.encoding);
    let blob;
    try {
      blob = await (await fetch("data:image/png;base64," + im.png_b64)).blob();
    } catch (e) {   // e.g. a Content-Security-Policy without data: in connect-src
      const bin = atob(im.png_b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      blob = new Blob([bytes], { type: "image/png" });
    }
    let bmp;
    try {
      bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (e) {
      bmp = await createImageBitmap(blob);
    }
    const w = bmp.width, h = bmp.height;
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    const octx = off.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
    octx.drawImage(bmp, 0, 0);
    const rgba = octx.getImageData(0, 0, w, h).data;
    const data = new Uint16Array(w * h);
    for (let i = 0, j = 0; i < data.length; i++, j += 4) data[i] = (rgba[j] << 8) | rgba[j + 1];
    if (bmp.close) bmp.close();
    return decodedImage(im, expectedStudy, w, h, data);
  }
  function decodedImage(im, studyKey, w, h, data) {
    let mn = 65535, mx = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    const win = im.window || { center: (mn + mx) / 2, width: Math.max(1, mx - mn) };
    return {
      studyKey, dw: w, dh: h, width: im.width || w, height: im.height || h, data, min: mn, max: mx,
      photometric: im.photometric || "MONOCHROME2", window: { center: +win.center, width: +win.width },
      voiFunction: im.voi_function || "LINEAR",
      presets: im.presets || {}, spacing: im.pixel_spacing_mm || null,
    };
  }
  // The pixels from the app's image route (app/image_route.py): raw little-endian uint16 stored values, inflated
  // by the browser's network stack (gzip), no image decode on the main thread. The answer names its study; pixels
  // of any other study are refused here.
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  async function fetchImage(im, expectedStudy) {
    if (im.encoding !== "u16le") throw new Error("unsupported encoding " + im.encoding);
    S.prefetchUsed = false;
    let buffer = await prefetched(expectedStudy, im.sha256);
    if (!buffer) {
      const response = await fetch(im.url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
      const named = response.headers.get("X-Gazex-Study-Key");
      if (named !== expectedStudy) throw new Error(`the image is of study ${named}, not ${expectedStudy}: not shown`);
      buffer = await response.arrayBuffer();
    }
    const w = im.disp_width, h = im.disp_height;
    if (buffer.byteLength !== w * h * 2) throw new Error(`image of ${buffer.byteLength} bytes, expected ${w}×${h}×2`);
    const data = new Uint16Array(buffer);
    if (!LITTLE_ENDIAN) for (let i = 0; i < data.length; i++) data[i] = (data[i] >> 8) | ((data[i] & 0xff) << 8);
    return decodedImage(im, expectedStudy, w, h, data);
  }

  // A study's pixels asked for before its value arrived: the app starts the fetch when a worklist row is pressed
  // (window.gazexPrefetch, app/main.py), so the pixels travel alongside Gradio's event round trip. The bytes are
  // used only for the study they were fetched for, and only when the answer names that study and the hash the
  // value names; anything else is dropped and the value's own URL is fetched.
  async function prefetched(studyKey, sha256) {
    const store = window.gazexPrefetch;
    const pending = store && typeof store.take === "function" ? store.take(studyKey) : null;
    if (!pending) return null;
    const got = await pending;
    S.prefetchUsed = !!(got && got.named === studyKey && got.sha256 === sha256 && got.buffer);
    return S.prefetchUsed ? got.buffer : null;
  }

  // ------------------------------------------------------------------ VOI windowing (lookup table)
  const lut32 = new Uint32Array(65536);
  function applyWindow(center, width, record) {
    S.win.center = center; S.win.width = Math.max(1, width);
    S.wlDirty = true; markDirty();
    if (record) event("window", { center: Math.round(S.win.center * 10) / 10, width: Math.round(S.win.width * 10) / 10 });
  }
  function rebuildImage() {
    const img = S.img;
    if (!img) return;
    const t0 = performance.now();
    const c = S.win.center, w = S.win.width;
    // DICOM PS3.3 C.11.2.1.2 VOI functions (the image's: LINEAR, LINEAR_EXACT or SIGMOID), output 0-255;
    // MONOCHROME1 inverted after the VOI.
    const lo = c - 0.5 - (w - 1) / 2, hi = c - 0.5 + (w - 1) / 2;
    const inv = (img.photometric === "MONOCHROME1") !== S.invert;
    const denom = Math.max(w - 1, 1e-6);
    const vmin = img.min, vmax = img.max, fn = img.voiFunction;
    for (let x = vmin; x <= vmax; x++) {
      let g;
      if (fn === "SIGMOID") g = Math.round(255 / (1 + Math.exp(-4 * (x - c) / w)));
      else if (fn === "LINEAR_EXACT") g = Math.round(((x - c) / w + 0.5) * 255);
      else if (x <= lo) g = 0;
      else if (x > hi) g = 255;
      else g = Math.round(((x - (c - 0.5)) / denom + 0.5) * 255);
      g = clamp(g, 0, 255);
      if (inv) g = 255 - g;
      lut32[x] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
    if (!img.canvas) {
      img.canvas = document.createElement("canvas");
      img.canvas.width = img.dw; img.canvas.height = img.dh;
      img.ctx = img.canvas.getContext("2d");
      img.pixels = img.ctx.createImageData(img.dw, img.dh);
    }
    const out = new Uint32Array(img.pixels.data.buffer);
    const d = img.data;
    for (let i = 0; i < d.length; i++) out[i] = lut32[d[i]];
    img.ctx.putImageData(img.pixels, 0, 0);
    S.wlDirty = false;
    S.winVersion = (S.winVersion || 0) + 1;
    S.lastWindowMs = performance.now() - t0;
  }

  // ------------------------------------------------------------------ view transform
  function resizeCanvas() {
    const r = stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width)), h = Math.max(1, Math.round(r.height));
    if (w === S.cssW && h === S.cssH && dpr === S.dpr) return;
    S.cssW = w; S.cssH = h; S.dpr = dpr;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    if (S.view.fitted) fitView(); else markDirty();
  }
  function fitView() {
    if (!S.img) return;
    const sc = Math.min(S.cssW / S.img.dw, S.cssH / S.img.dh) * 0.98;
    S.view = { scale: sc, tx: (S.cssW - S.img.dw * sc) / 2, ty: (S.cssH - S.img.dh * sc) / 2, fitted: true };
    markDirty();
  }
  const toScreen = (nx, ny) => [S.view.tx + nx * S.img.dw * S.view.scale, S.view.ty + ny * S.img.dh * S.view.scale];
  const toNorm = (sx, sy) => [(sx - S.view.tx) / (S.img.dw * S.view.scale), (sy - S.view.ty) / (S.img.dh * S.view.scale)];
  function zoomAt(sx, sy, factor) {
    const sc = clamp(S.view.scale * factor, 0.05, 40);
    const f = sc / S.view.scale;
    S.view = { scale: sc, tx: sx - (sx - S.view.tx) * f, ty: sy - (sy - S.view.ty) * f, fitted: false };
    markDirty();
  }
  function resetView(record) {
    if (!S.img) return;
    S.invert = false;
    applyWindow(S.img.window.center, S.img.window.width, false);
    fitView();
    if (record) event("reset", {});
  }

  // ------------------------------------------------------------------ drawing
  // The windowed, scaled image is cached at canvas resolution and re-rendered only when the window or the
  // view changes; a frame is then one 1:1 blit plus the vector overlays.
  const baseCanvas = document.createElement("canvas");
  const baseCtx = baseCanvas.getContext("2d");
  let baseKey = "";
  function renderBase() {
    const key = [S.view.scale, S.view.tx, S.view.ty, canvas.width, canvas.height, S.dpr, S.winVersion, S.img.studyKey, S.pngKey].join(",");
    if (key === baseKey && !S.wlDirty) return;
    if (S.wlDirty) rebuildImage();
    if (baseCanvas.width !== canvas.width || baseCanvas.height !== canvas.height) {
      baseCanvas.width = canvas.width; baseCanvas.height = canvas.height;
    }
    baseCtx.setTransform(1, 0, 0, 1, 0, 0);
    baseCtx.fillStyle = "#000";
    baseCtx.fillRect(0, 0, baseCanvas.width, baseCanvas.height);
    baseCtx.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
    baseCtx.imageSmoothingEnabled = S.view.scale < 3;
    baseCtx.imageSmoothingQuality = "high";
    baseCtx.drawImage(S.img.canvas, S.view.tx, S.view.ty, S.img.dw * S.view.scale, S.img.dh * S.view.scale);
    baseKey = key;
  }
  function draw() {
    const t0 = performance.now();
    const dpr = S.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (!imageIsCurrent()) {   // nothing but the placeholder: no other study's pixels, no boxes without their image
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      return;
    }
    renderBase();
    ctx.drawImage(baseCanvas, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (S.show.boxes) drawBoxes();
    if (S.show.traj || S.show.clues) drawTrajectory();
    if (S.answerBox) drawAnswerBox();
    if (S.drag && S.drag.kind === "draw") drawRubber();
    if (S.measure) drawMeasure();
    drawHud();
    S.lastDrawMs = performance.now() - t0;
    S.drawTimes.push(S.lastDrawMs);
    if (S.drawTimes.length > 600) S.drawTimes.splice(0, 300);
    if (!S.painted) {   // the open study's own image is on screen now
      S.painted = true;
      S.paintedAt = performance.now();
      S.shownAt = nowTs();
    }
  }
  function drawHud() {
    const img = S.img;
    // only touch the DOM when a text changes (no layout work per animation frame)
    setHud("tl", `${S.studyKey || ""}\n${img.width}×${img.height}  ${img.photometric}`);
    setHud("tr", `Zoom ${(S.view.scale * img.dw / img.width * 100).toFixed(0)}%` + (S.invert ? "\nINVERTED" : ""));
    setHud("bl", `W ${Math.round(S.win.width)}  L ${Math.round(S.win.center)}`);
    const mode = S.mode === "draw" ? "DRAW BOX — drag on the image" : S.mode === "measure" ? "MEASURE — drag" :
      S.mode === "wl" ? "WINDOW/LEVEL — drag" : "";
    setHud("br", mode || (S.readonly ? "READ ONLY" : ""));
    hud.br.classList.toggle("gx-mode", !!mode);
  }
  const hudText = {};
  function setHud(k, text) {
    if (hudText[k] === text) return;
    hudText[k] = text;
    hud[k].textContent = text;
  }

  // ------------------------------------------------------------------ render loop (never blocks input)
  let lastT = performance.now();
  let rafId = 0;
  function loop(t) {
    if (S.destroyed) return;
    rafId = requestAnimationFrame(loop);
    S.rafFrames += 1;
    const dt = Math.min(100, t - lastT);
    lastT = t;
    if (S.playing) advance(dt);
    if (S.dirty || S.playing) {
      S.dirty = false;
      try { draw(); } catch (e) { console.error("gazex draw", e); }
    }
  }
  rafId = requestAnimationFrame(loop);

  // ------------------------------------------------------------------ pointer input
  function localXY(e) { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (e) => {
    noteInput();
    root.focus({ preventScroll: true });
    if (!S.img) return;
    const [sx, sy] = localXY(e);
    const n = toNorm(sx, sy);
    canvas.setPointerCapture(e.pointerId);
    const base = { sx0: sx, sy0: sy, moved: false, pointerId: e.pointerId, startedAt: nowTs() };
    if (e.button === 2 || (e.button === 0 && S.mode === "wl")) {
      S.drag = Object.assign(base, { kind: "wl", c0: S.win.center, w0: S.win.width });
    } else if (e.button === 1) {
      S.drag = Object.assign(base, { kind: "pan", tx0: S.view.tx, ty0: S.view.ty });
    } else if (S.mode === "draw" && canEdit()) {
      S.drag = Object.assign(base, { kind: "draw", n0: n, n1: n });
    } else if (S.mode === "measure") {
      S.drag = Object.assign(base, { kind: "measure" });
      S.measure = { a: n, b: n };
    } else {
      const hit = hitBox(sx, sy);
      if (hit && hit.box.id === S.selectedBox && hit.box.status !== "rejected" && canEdit()) {
        const b = hit.box;
        S.drag = Object.assign(base, { kind: hit.corner >= 0 ? "resize" : "move", box: b, corner: hit.corner, n0: n,
          start: [b.x_min, b.y_min, b.x_max, b.y_max] });
      } else if (hit) {
        S.drag = Object.assign(base, { kind: "pick", box: hit.box, tx0: S.view.tx, ty0: S.view.ty });
      } else {
        S.drag = Object.assign(base, { kind: "pan", tx0: S.view.tx, ty0: S.view.ty, empty: true });
      }
    }
    markDirty();
  });
  canvas.addEventListener("pointermove", (e) => {
    const d = S.drag;
    if (!d || !S.img) return;
    noteInput();
    const [sx, sy] = localXY(e);
    const dx = sx - d.sx0, dy = sy - d.sy0;
    if (Math.abs(dx) + Math.abs(dy) > 3) d.moved = true;
    if (!d.moved) return;
    const n = toNorm(sx, sy);
    if (d.kind === "wl") {
      const span = Math.max(16, S.img.max - S.img.min);
      applyWindow(d.c0 + dy * span / 600, Math.max(1, d.w0 + dx * span / 300), false);
    } else if (d.kind === "pan" || d.kind === "pick") {
      S.view = { scale: S.view.scale, tx: d.tx0 + dx, ty: d.ty0 + dy, fitted: false };
    } else if (d.kind === "draw") {
      d.n1 = n;
    } else if (d.kind === "measure") {
      S.measure.b = n;
    } else if (d.kind === "move") {
      const [x0, y0, x1, y1] = d.start;
      const ddx = clamp(n[0] - d.n0[0], -x0, 1 - x1), ddy = clamp(n[1] - d.n0[1], -y0, 1 - y1);
      Object.assign(d.box, { x_min: x0 + ddx, y_min: y0 + ddy, x_max: x1 + ddx, y_max: y1 + ddy });
    } else if (d.kind === "resize") {
      const [x0, y0, x1, y1] = d.start;
      const c = [clamp(n[0], 0, 1), clamp(n[1], 0, 1)];
      const ax = d.corner === 0 || d.corner === 2 ? x1 : x0;   // fixed (opposite) corner
      const ay = d.corner === 0 || d.corner === 1 ? y1 : y0;
      Object.assign(d.box, normBox([ax, ay], c));
    }
    markDirty();
  });
  function endDrag(e) {
    const d = S.drag;
    if (!d) return;
    S.drag = null;
    try { canvas.releasePointerCapture(d.pointerId); } catch (err) { /* released */ }
    if (d.kind === "wl" && d.moved) event("window", { center: Math.round(S.win.center), width: Math.round(S.win.width), source: "drag" });
    else if ((d.kind === "pan" || d.kind === "pick") && d.moved) event("pan", { tx: Math.round(S.view.tx), ty: Math.round(S.view.ty) });
    else if (d.kind === "pick" && !d.moved) selectBox(d.box.id);
    else if (d.kind === "pan" && !d.moved && d.empty && S.selectedBox) { S.selectedBox = null; updateToolbar(); }
    else if (d.kind === "draw") {
      const b = normBox(d.n0, d.n1);
      const [x, y, w, h] = rectOf(b);
      if (w >= 6 && h >= 6) {
        const sid = S.selectedSentence && sentenceById(S.selectedSentence) ? S.selectedSentence : null;
        const s = sid && sentenceById(sid);
        const nb = Object.assign({ id: "new-box-" + (++S.localSeq), sentence_id: sid, label: s ? s.label : null,
          status: "added", orig: null }, b);
        S.boxes.push(nb);
        S.undo.push({ id: nb.id, existed: false });
        S.selectedBox = nb.id;
        S.firstTouch["box:" + nb.id] = d.startedAt;
        decideBox(nb, "added");
      }
      S.mode = null;
      updateToolbar();
    } else if (d.kind === "measure") {
      event("measure", { length: measureText(S.measure) });
    } else if ((d.kind === "move" || d.kind === "resize") && d.moved) {
      S.undo.push({ id: d.box.id, coords: d.start, status: d.box.status, existed: true });
      decideBox(d.box, d.kind === "move" ? "moved" : "resized", { status: d.box.status, coords: d.start });
    }
    markDirty();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  let wheelTimer = 0;
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    noteInput();
    if (!S.img) return;
    const [sx, sy] = localXY(e);
    zoomAt(sx, sy, Math.pow(1.0015, -e.deltaY));
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(() => event("zoom", { scale: Math.round(S.view.scale * 1000) / 1000 }), 400);
  }, { passive: false });

  function preset(name) {
    if (!S.img) return;
    const p = S.img.presets && S.img.presets[name];
    if (!p) { setStatus(`No ${name} preset for this image`, "busy"); return; }
    applyWindow(+p[0], +p[1], false);
    event("window", { preset: name, center: +p[0], width: +p[1] });
  }
