  // ---- test hooks (bundled only when GAZEX_TEST_HOOKS is set; inserted inside workstation.js's closure) ----
  // Read-only state for browser tests and benchmarks, plus two test-only levers: an artificial delay before a
  // decoded image is shown (to look at the canvas while a study is loading) and a canvas sample.
  const snapshotBox = (b) => ({ id: b.id, sentence_id: b.sentence_id, label: b.label, x_min: b.x_min, y_min: b.y_min,
    x_max: b.x_max, y_max: b.y_max, status: b.status, also: (b.also || []).slice() });
  const getters = {
    selectedSentence: () => S.selectedSentence,
    activeSentence: () => S.activeSentence,
    highlighted: () => Array.from(listEl.querySelectorAll(".gx-sent.active, .gx-sent.selected")).map((el) => el.dataset.sid),
    selectedBox: () => S.selectedBox,
    playing: () => S.playing,
    frame: () => S.frame,
    frameCount: () => S.frames.length,
    speed: () => S.speed,
    boxes: () => S.boxes.map(snapshotBox),
    sentences: () => S.sentences.map((s) => ({ id: s.id, section: s.section, label: s.label, status: s.status,
      final_text: s.final_text, evidence_of: s.evidence_of || null, flag: textFlag(s.final_text) })),
    view: () => ({ scale: S.view.scale, tx: S.view.tx, ty: S.view.ty, center: S.win.center, width: S.win.width,
      invert: S.invert, photometric: S.img ? S.img.photometric : null, canvasWidth: S.cssW, canvasHeight: S.cssH,
      dispWidth: S.img ? S.img.dw : 0, dispHeight: S.img ? S.img.dh : 0 }),
    show: () => Object.assign({}, S.show),
    mode: () => S.mode,
    editing: () => S.editing,
    readonly: () => S.readonly,
    sessionId: () => S.sessionId,
    imageStudyKey: () => (S.img ? S.img.studyKey : null),
    openToPaintMs: () => (S.painted && imageIsCurrent() ? S.paintedAt - S.openedAt : null),
    rafFrames: () => S.rafFrames,
    lastWindowMs: () => S.lastWindowMs || null,
    lastDrawMs: () => (S.lastDrawMs != null ? S.lastDrawMs : null),
    drawTimes: () => S.drawTimes.slice(),
    paintedAt: () => (S.painted && imageIsCurrent() ? S.paintedAt : null),
    prefetchUsed: () => !!S.prefetchUsed,   // the open study's pixels came from the fetch started at the click
    imageLoadMs: () => (S.painted && imageIsCurrent() ? S.imageLoadMs : null),   // value -> pixels decoded
    pending: () => S.queue.length,
    acks: () => S.acks.map((a) => ({ fn: a.fn, seq: a.seq, latency_ms: a.latency_ms, replayed: a.replayed,
      args: Object.assign({}, a.args) })),
    failures: () => S.failures.slice(),
    lastError: () => S.lastError || null,
    timing: () => ({ active_ms: S.timing.active, idle_ms: S.timing.idle, hidden_ms: S.timing.hidden, state: S.timing.state }),
    helpOpen: () => !helpEl.hidden,
    signedOff: () => S.signedOff || null,
  };
  for (const [k, g] of Object.entries(getters)) Object.defineProperty(api, k, { get: g, enumerable: true });
  api.toClient = (nx, ny) => { const r = canvas.getBoundingClientRect(); const [x, y] = toScreen(nx, ny); return { x: r.left + x, y: r.top + y }; };
  api.storedValueAt = (px, py) => (S.img ? S.img.data[py * S.img.dw + px] : null);
  api.pixelAt = (cx, cy) => { const d = ctx.getImageData(Math.round(cx * S.dpr), Math.round(cy * S.dpr), 1, 1).data; return [d[0], d[1], d[2]]; };
  // every `step`-th canvas pixel's red channel (the image is grey) with the canvas size
  api.canvasSample = (step) => {
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data, out = [];
    for (let y = 0; y < canvas.height; y += step) for (let x = 0; x < canvas.width; x += step) out.push(d[(y * canvas.width + x) * 4]);
    return { width: canvas.width, height: canvas.height, step, values: out };
  };
  api.setImageDelay = (ms) => { S.imageDelayMs = Math.max(0, +ms || 0); };
