// GazeX Review workstation: X-ray viewer + animated inspection trajectory + boxes + report panel.
// Runs as the body of gr.HTML's js_on_load: (element, trigger, props, server, upload, watch) are in scope,
// and app/workstation/component.py prepends `const GX_CSS = "...";`. Contract: docs/workstation_contract.md.
(function () {
  "use strict";
  const CSS_TEXT = typeof GX_CSS === "string" ? GX_CSS : "";
  if (CSS_TEXT && !document.getElementById("gx-ws-style")) {
    const st = document.createElement("style");
    st.id = "gx-ws-style";
    st.textContent = CSS_TEXT;
    document.head.appendChild(st);
  }
  if (window.__gxWsCleanup) { try { window.__gxWsCleanup(); } catch (e) { /* previous instance gone */ } }

  // ------------------------------------------------------------------ constants
  const IDLE_MS_DEFAULT = 60000;
  const LABEL_COLORS = {
    "No Finding": "#8fa3b8", "Enlarged Cardiomediastinum": "#ff8a65", "Cardiomegaly": "#ff5f7e",
    "Lung Opacity": "#ffd54f", "Lung Lesion": "#ffb74d", "Edema": "#4dd0e1", "Consolidation": "#f06292",
    "Pneumonia": "#e57373", "Atelectasis": "#aed581", "Pneumothorax": "#64b5f6", "Pleural Effusion": "#4fc3f7",
    "Pleural Other": "#9575cd", "Fracture": "#fff176", "Support Devices": "#81c784",
  };
  const SHORTCUTS = [
    ["Viewer", [
      ["Wheel", "Zoom at the cursor"], ["Drag", "Pan"], ["Right-drag", "Window / level"],
      ["L", "Window/level mode (left-drag)"], ["1 / 2 / 3", "Lung / mediastinum / bone window"],
      ["0", "DICOM VOI default window"], ["I", "Invert"], ["F", "Fit to panel"], ["Space / R", "Reset view"],
      ["B / C / T", "Toggle boxes / clue boxes / trajectory"], ["M", "Measure distance (mm)"]]],
    ["Trajectory", [
      ["P / K", "Play / pause"], [". / ,", "Step forward / back"], ["] / [", "Faster / slower"]]],
    ["Report", [
      ["↑ / ↓", "Previous / next sentence"], ["A", "Accept sentence"], ["E", "Edit sentence"],
      ["Ctrl+Enter", "Save edit"], ["Esc", "Cancel edit / mode / close"], ["D", "Delete sentence"],
      ["N", "Add a sentence"]]],
    ["Boxes", [
      ["Click box", "Select box and its sentence"], ["Drag inside", "Move selected box"],
      ["Drag corner", "Resize selected box"], ["V", "Accept box"], ["X", "Reject box"],
      ["W", "Draw a new box (linked to the selected sentence)"], ["Ctrl+Z", "Undo last box edit"],
      ["?", "This help"]]],
  ];

  // ------------------------------------------------------------------ DOM
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const helpHtml = SHORTCUTS.map(([title, rows]) =>
    `<table><tr><th colspan="2">${esc(title)}</th></tr>` +
    rows.map(([k, d]) => `<tr><td>${k.split(" / ").map((x) => `<kbd>${esc(x)}</kbd>`).join(" / ")}</td><td>${esc(d)}</td></tr>`).join("") +
    `</table>`).join("");

  element.innerHTML = `
<div class="gx-ws" tabindex="0" data-testid="ws-root">
  <div class="gx-viewer">
    <div class="gx-toolbar">
      <button data-testid="ws-play" data-act="play" title="Play trajectory (P)">▶ Play</button>
      <button data-testid="ws-pause" data-act="pause" title="Pause (P / K)">❚❚</button>
      <button data-testid="ws-step-back" data-act="stepback" title="Step back (,)">◀︎</button>
      <button data-testid="ws-step" data-act="step" title="Step forward (.)">▶︎|</button>
      <input type="range" data-testid="ws-scrub" min="0" max="0" step="1" value="0" title="Scrub the trajectory">
      <span class="gx-frame"></span>
      <select data-testid="ws-speed" title="Playback speed ([ / ])">
        <option value="0.5">0.5×</option><option value="1" selected>1×</option><option value="2">2×</option><option value="4">4×</option>
      </select>
      <span class="gx-sep"></span>
      <button data-testid="ws-toggle-boxes" data-act="boxes" class="gx-on" title="Observation boxes (B)">Boxes</button>
      <button data-testid="ws-toggle-clues" data-act="clues" class="gx-on" title="Clue boxes (C)">Clues</button>
      <button data-testid="ws-toggle-traj" data-act="traj" class="gx-on" title="Trajectory (T)">Path</button>
      <span class="gx-sep"></span>
      <button data-testid="ws-preset-lung" data-act="preset1" title="Lung window (1)">Lung</button>
      <button data-testid="ws-preset-mediastinum" data-act="preset2" title="Mediastinum window (2)">Med</button>
      <button data-testid="ws-preset-bone" data-act="preset3" title="Bone window (3)">Bone</button>
      <button data-testid="ws-wl-mode" data-act="wl" title="Window/level mode (L); right-drag always works">W/L</button>
      <button data-testid="ws-invert" data-act="invert" title="Invert (I)">Inv</button>
      <button data-testid="ws-fit" data-act="fit" title="Fit (F)">Fit</button>
      <button data-testid="ws-reset" data-act="reset" title="Reset (Space / R)">Reset</button>
      <button data-testid="ws-measure" data-act="measure" title="Measure (M)">Ruler</button>
      <span class="gx-sep"></span>
      <button data-testid="ws-draw-box" data-act="draw" title="Draw a box (W)">□ Draw box</button>
      <button data-testid="ws-help" data-act="help" title="Shortcuts (?)">?</button>
    </div>
    <div class="gx-stage">
      <canvas data-testid="ws-canvas"></canvas>
      <div class="gx-hud gx-hud-tl"></div><div class="gx-hud gx-hud-tr"></div>
      <div class="gx-hud gx-hud-bl"></div><div class="gx-hud gx-hud-br"></div>
      <div class="gx-loading" data-testid="ws-image-state">No study open</div>
    </div>
    <div class="gx-boxbar">
      <span class="gx-boxinfo">No box selected — click a box on the image</span>
      <button data-testid="ws-box-accept" data-act="boxaccept" title="Accept box (V)">✓ Accept box</button>
      <button data-testid="ws-box-reject" data-act="boxreject" title="Reject box (X)">✗ Reject box</button>
      <button data-testid="ws-undo" data-act="undo" title="Undo last box edit (Ctrl+Z)">↶ Undo</button>
    </div>
  </div>
  <div class="gx-report">
    <div class="gx-report-head"><span class="gx-title">Draft report</span><span class="gx-study" data-testid="ws-study"></span><span class="gx-progress"></span></div>
    <div class="gx-banners"></div>
    <div class="gx-sentences" data-testid="ws-sentences"></div>
    <div class="gx-add-row"><button data-testid="ws-add-sentence" data-act="add" title="Add a sentence (N)">+ Add sentence</button></div>
    <div class="gx-ask">
      <div class="gx-row"><input type="text" data-testid="ws-ask-input" placeholder="Ask GazeX about this image…">
      <button data-testid="ws-ask" data-act="ask">Ask</button></div>
      <div class="gx-ask-question" data-testid="ws-ask-question"></div>
      <div class="gx-ask-answer" data-testid="ws-ask-answer"></div>
    </div>
    <div class="gx-signoff">
      <button class="gx-so-accept" data-testid="ws-signoff-accept" data-act="so-accept" title="Sign the draft as drafted">Accept as drafted</button>
      <button class="gx-so-modify" data-testid="ws-signoff-modify" data-act="so-modify" title="Sign with your modifications">Sign modified</button>
      <button class="gx-so-reject" data-testid="ws-signoff-reject" data-act="so-reject" title="Reject the draft">Reject draft</button>
    </div>
    <div class="gx-status" data-testid="ws-status">Ready</div>
  </div>
  <div class="gx-modal gx-help" data-testid="ws-help-overlay" hidden>
    <div class="gx-modal-card"><h3>Keyboard shortcuts</h3><div class="gx-help-grid">${helpHtml}</div>
      <div class="gx-modal-actions"><button data-act="closehelp" data-testid="ws-help-close">Close (Esc)</button></div></div>
  </div>
  <div class="gx-modal gx-confirm" data-testid="ws-confirm" hidden>
    <div class="gx-modal-card"><h3 class="gx-confirm-title"></h3><div class="gx-confirm-text"></div>
      <div class="gx-modal-actions"><button data-act="confirm-cancel" data-testid="ws-confirm-cancel">Cancel</button>
      <button data-act="confirm-rest" data-testid="ws-confirm-accept-rest" hidden>Accept the rest and sign</button>
      <button data-act="confirm-ok" data-testid="ws-confirm-ok">Confirm</button></div></div>
  </div>
</div>`;

  const $ = (sel) => element.querySelector(sel);
  const root = $(".gx-ws");
  const stage = $(".gx-stage");
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const hud = { tl: $(".gx-hud-tl"), tr: $(".gx-hud-tr"), bl: $(".gx-hud-bl"), br: $(".gx-hud-br") };
  const loadingEl = $(".gx-loading");
  const listEl = $(".gx-sentences");
  const statusEl = $(".gx-status");
  const scrubEl = $('[data-testid="ws-scrub"]');
  const speedEl = $('[data-testid="ws-speed"]');
  const frameEl = $(".gx-frame");
  const boxInfoEl = $(".gx-boxinfo");
  const helpEl = $(".gx-help");
  const confirmEl = $(".gx-confirm");
  const askInput = $('[data-testid="ws-ask-input"]');
  const askAnswer = $('[data-testid="ws-ask-answer"]');
  const askQuestion = $('[data-testid="ws-ask-question"]');
  const studyEl = $(".gx-study");

  // ------------------------------------------------------------------ state
  const S = {
    value: null, sessionId: null, studyKey: null, readonly: false,
    img: null,            // {dw, dh, width, height, data: Uint16Array, min, max, photometric, window, presets, spacing}
    pngKey: null,
    win: { center: 0, width: 1 }, invert: false, wlDirty: true,
    view: { scale: 1, tx: 0, ty: 0, fitted: true },
    cssW: 1, cssH: 1, dpr: 1,
    show: { boxes: true, clues: true, traj: true },
    sentences: [], boxes: [], order: [],
    selectedSentence: null, selectedBox: null, activeSentence: null,
    editing: null, editDraft: null, adding: null,
    frames: [], frame: -1, frameT: 0, playing: false, speed: 1,
    mode: null,           // null | "draw" | "measure" | "wl"
    drag: null, measure: null, answerBox: null,
    undo: [],
    firstTouch: {}, shownAt: 0,
    dirty: true, painted: false, openedAt: 0, paintedAt: 0, rafFrames: 0,
    queue: [], pumping: false, acks: [], failures: [], idMap: {}, lastAck: null, refused: {},
    imageDelayMs: 0,      // test hook only (delays showing a decoded image)
    timing: { active: 0, idle: 0, hidden: 0, last: performance.now(), lastInput: performance.now(), state: "active" },
    idleMs: IDLE_MS_DEFAULT, destroyed: false, localSeq: 0, drawTimes: [],
  };

  // ------------------------------------------------------------------ helpers
  const nowTs = () => Date.now();
  const colorOf = (label) => LABEL_COLORS[label] || "#b0bec5";
  const sentenceById = (id) => S.sentences.find((s) => s.id === id) || null;
  const boxById = (id) => S.boxes.find((b) => b.id === id) || null;
  const touch = (key) => { if (!(key in S.firstTouch)) S.firstTouch[key] = nowTs(); };
  // time on an item: from when it was first selected or worked on, else from when the study was first on screen
  const durationFor = (key) => Math.max(0, nowTs() - (S.firstTouch[key] != null ? S.firstTouch[key] : S.shownAt));
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const markDirty = () => { S.dirty = true; };

  // A drafted sentence that looks cut off or garbled: an unfinished number ("approximately 4."), a number with two
  // decimal points ("4.3.3 cm"), a run of one repeated character ("defibrillllllator").
  const TEXT_FLAGS = [
    [/\d\.\s*$/, "ends in an unfinished number"],
    [/\d+\.\d+\.\d/, "a number with two decimal points"],
    [/([A-Za-z])\1{3,}/, "a repeated character run"],
    [/(\b\w+\b)(\s+\1\b){2,}/i, "a word repeated three times"],
  ];
  function textFlag(text) {
    const t = String(text || "");
    for (const [re, why] of TEXT_FLAGS) if (re.test(t)) return why;
    return null;
  }
  const STATUS_TEXT = { accepted_at_signoff: "accepted at sign-off" };

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.title = text;
    statusEl.className = "gx-status" + (kind ? " gx-" + kind + "-msg" : "");
  }

  // ------------------------------------------------------------------ server calls: ordered queue, retry with backoff
  // Decisions, added sentences and sign-offs wait in localStorage until the server acknowledges them, so a closed
  // tab, a reload or a restarted server loses nothing: the next page load sends them again (the server treats a
  // repeated call -- same session, client timestamp and content -- as the one it already has).
  const ID_KEYS = ["sentence_id", "after_sentence_id", "linked_sentence_id", "box_id"];
  const KEPT_FNS = ["decide_sentence", "add_sentence", "decide_box", "sign_off"];
  const STORE_PREFIX = "gazex.unacked.";
  const storeKey = STORE_PREFIX + Math.random().toString(36).slice(2) + Date.now().toString(36);
  function persistQueue() {
    try {
      const kept = S.queue.filter((it) => KEPT_FNS.includes(it.fn)).map((it) => ({ fn: it.fn, args: it.args, meta: it.meta }));
      if (kept.length) localStorage.setItem(storeKey, JSON.stringify({ items: kept, idMap: S.idMap }));
      else localStorage.removeItem(storeKey);
    } catch (e) { /* storage full or off: the in-memory queue still retries */ }
  }
  function adoptStoredQueues() {
    let adopted = 0;
    try {
      const keys = [];
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (k && k.startsWith(STORE_PREFIX) && k !== storeKey) keys.push(k);
      }
      for (const k of keys) {
        const saved = JSON.parse(localStorage.getItem(k) || "{}");
        localStorage.removeItem(k);
        Object.assign(S.idMap, saved.idMap || {});
        for (const it of saved.items || []) {
          S.queue.push({ fn: it.fn, args: it.args, meta: it.meta || {}, tries: 0, queuedAt: performance.now(),
                         n: ++S.localSeq, replayed: true });
          adopted += 1;
        }
      }
    } catch (e) { console.error("gazex: unreadable saved decisions", e); }
    if (adopted) {
      persistQueue();
      if (S.sessionId != null) { applyQueuedDecisions(); renderReport(); markDirty(); }
      setStatus(`⟳ sending ${adopted} decision${adopted > 1 ? "s" : ""} saved in this browser before the page closed…`, "busy");
      pump();
    }
    return adopted;
  }
  // Decisions still waiting for their acknowledgement (or replayed from this browser) show as made, also when the
  // study is reopened before the server has them.
  function applyQueuedDecisions() {
    for (const it of S.queue) {
      if (it.args.session_id !== S.sessionId) continue;
      if (it.fn === "decide_sentence") {
        const s = sentenceById(it.args.sentence_id);
        if (s && s.status !== "added") { s.status = it.args.decision; if (it.args.final_text != null) s.final_text = it.args.final_text; }
      } else if (it.fn === "decide_box") {
        const b = boxById(it.args.box_id);
        if (b && it.args.decision !== "added") {
          b.status = it.args.decision;
          if (Array.isArray(it.args.box)) [b.x_min, b.y_min, b.x_max, b.y_max] = it.args.box;
        }
      }
    }
  }
  // made once, when the reader acts: the server records a call with a decision_id it has seen only once
  const newDecisionId = () => (window.crypto && crypto.randomUUID ? crypto.randomUUID()
    : Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12) + "-" + Math.random().toString(36).slice(2, 12));
  function send(fn, args, onAck, meta) {
    const base = { session_id: S.sessionId, client_ts: nowTs() };
    if (KEPT_FNS.includes(fn)) base.decision_id = newDecisionId();
    const item = { fn, args: Object.assign(base, args), tries: 0, onAck,
                   meta: meta || {}, queuedAt: performance.now(), n: ++S.localSeq };
    S.queue.push(item);
    persistQueue();
    pump();
    return item;
  }
  function translate(args) {
    const out = Object.assign({}, args);
    for (const k of ID_KEYS) if (out[k] != null && S.idMap[out[k]] != null) out[k] = S.idMap[out[k]];
    return out;
  }
  function withTimeout(p, ms) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no answer in " + ms / 1000 + " s")), ms);
      Promise.resolve(p).then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
    });
  }
  const itemKey = (args) => args.sentence_id != null ? args.sentence_id : (args.box_id != null ? "box:" + args.box_id : null);
  function noteRefusal(it, error) {
    S.failures.push({ fn: it.fn, error, args: it.args });
    const current = it.args.session_id === S.sessionId;
    if (current) undoRefused(it);
    const key = itemKey(it.args);
    if (key != null && current) {
      S.refused[key] = error || "refused";
      const s = sentenceById(it.args.sentence_id);
      if (s) updateSentenceEl(s);
    }
    if (it.fn === "sign_off" && it.args.session_id === S.sessionId) {
      S.readonly = false;   // not signed: the reader can act again
      renderReport(); updateToolbar();
    }
  }
  // A refused decision was never recorded: the item goes back to what it showed before (so the report and the
  // record agree), unless the reader has changed it again since.
  function undoRefused(it) {
    if (it.fn === "add_sentence" && it.meta && it.meta.localId) {
      S.sentences = S.sentences.filter((s) => s.id !== it.meta.localId);
      renderReport();
      return;
    }
    const prev = it.meta && it.meta.prev;
    if (!prev) return;
    if (it.fn === "decide_sentence") {
      const s = sentenceById(it.args.sentence_id);
      if (s && s.status === prev.after) { s.status = prev.status; s.final_text = prev.final_text; }
    } else if (it.fn === "decide_box") {
      const b = boxById(it.args.box_id);
      if (b && b.status === prev.after) { b.status = prev.status; [b.x_min, b.y_min, b.x_max, b.y_max] = prev.coords; markDirty(); }
    }
  }
  async function pump() {
    if (S.pumping) return;
    S.pumping = true;
    try {
      while (S.queue.length && !S.destroyed) {
        const it = S.queue[0];
        const fn = server && server[it.fn];
        if (typeof fn !== "function") {
          noteRefusal(it, "server function missing");
          setStatus(`✗ ${it.fn}: server function missing (not saved)`, "err");
          S.queue.shift();
          persistQueue();
          continue;
        }
        let res;
        try {
          res = await withTimeout(fn(translate(it.args)), 20000);
          // Gradio's client swallows HTTP errors (a raising server function or a lost connection) and resolves
          // with undefined: only an object is an acknowledgement; anything else is retried.
          if (!res || typeof res !== "object") throw new Error("no acknowledgement (server error or connection lost)");
          if (res.ok === false && res.retry) throw new Error(res.error || "refused");
        } catch (e) {
          it.tries += 1;
          const delay = Math.min(10000, 400 * Math.pow(2, it.tries - 1));
          const msg = (e && e.message) || String(e);
          setStatus(`⟳ ${it.fn} failed (${msg}); retry ${it.tries} in ${(delay / 1000).toFixed(1)} s · ${S.queue.length} queued`, "err");
          S.lastError = { fn: it.fn, error: msg, tries: it.tries };
          await sleep(delay);
          continue;
        }
        S.queue.shift();
        const latency = performance.now() - it.queuedAt;
        if (res.ok === false) {   // a refusal: shown, never retried; the calls behind it go on
          noteRefusal(it, res.error);
          persistQueue();
          setStatus(`✗ ${it.fn} refused: ${res.error || "error"}`, "err");
          continue;
        }
        if (it.fn === "add_sentence" && it.meta.localId && res.sentence_id) S.idMap[it.meta.localId] = String(res.sentence_id);
        if (it.fn === "decide_box" && it.meta.localId && res.box_id) S.idMap[it.meta.localId] = String(res.box_id);
        persistQueue();
        const ack = { fn: it.fn, n: it.n, seq: res.seq, server_ts: res.server_ts, latency_ms: latency,
                      args: it.args, result: res, replayed: !!it.replayed };
        S.acks.push(ack);
        if (S.acks.length > 500) S.acks.splice(0, S.acks.length - 500);
        S.lastAck = ack;
        const what = it.args.decision ? `${it.fn} ${it.args.decision}` : (it.args.event_type ? `event ${it.args.event_type}` : it.fn);
        const left = S.queue.length ? ` · ${S.queue.length} queued` : "";
        const refused = S.failures.length ? ` · ✗ ${S.failures.length} not saved (last: ${S.failures[S.failures.length - 1].error || "refused"})` : "";
        setStatus(`✓ saved ${what}${res.seq != null ? " #" + res.seq : ""} (${Math.round(latency)} ms)${left}${refused}`,
          refused ? "err" : "ok");
        if (it.onAck) { try { it.onAck(res); } catch (e) { console.error(e); } }
      }
    } finally {
      S.pumping = false;
    }
  }
  function event(type, payload) {
    if (S.sessionId == null) return;
    send("record_event", { event_type: type, payload: payload || {} });
  }

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
    applyQueuedDecisions();
    buildFrames();
    renderReport();
    updateToolbar();
    const pngKey = (v.image.study_key || v.study_key) + "|" +
      (v.image.png_b64 ? v.image.png_b64.length + ":" + v.image.png_b64.slice(0, 64) + v.image.png_b64.slice(-64) : "");
    if (pngKey !== S.pngKey) {
      S.pngKey = pngKey;
      showImageState(`${S.studyKey || ""} — loading image…`);
      decodeImage(v.image, S.studyKey).then(async (img) => {
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
    } else {
      markDirty();
    }
  }
  function showImageState(text) {
    loadingEl.textContent = text;
    loadingEl.hidden = false;
    renderHead();
    markDirty();
  }
  // The image on screen belongs to the open study (the payload names its study; the decoded image keeps it).
  const imageIsCurrent = () => !!S.img && S.img.studyKey === S.studyKey && S.studyKey != null;

  async function decodeImage(im, expectedStudy) {
    if (im.encoding && im.encoding !== "rgb16") throw new Error("unsupported encoding " + im.encoding);
    if (im.study_key != null && im.study_key !== expectedStudy)
      throw new Error(`the image is of study ${im.study_key}, not ${expectedStudy}: not shown`);
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
    let mn = 65535, mx = 0;
    for (let i = 0, j = 0; i < data.length; i++, j += 4) {
      const v = (rgba[j] << 8) | rgba[j + 1];
      data[i] = v;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    if (bmp.close) bmp.close();
    const win = im.window || { center: (mn + mx) / 2, width: Math.max(1, mx - mn) };
    return {
      studyKey: expectedStudy, dw: w, dh: h, width: im.width || w, height: im.height || h, data, min: mn, max: mx,
      photometric: im.photometric || "MONOCHROME2", window: { center: +win.center, width: +win.width },
      voiFunction: im.voi_function || "LINEAR",
      presets: im.presets || {}, spacing: im.pixel_spacing_mm || null,
    };
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

  // ------------------------------------------------------------------ trajectory
  function buildFrames() {
    const findings = S.sentences.filter((s) => s.section === "findings" && s.trajectory && s.trajectory.length);
    const src = findings.length ? findings : S.sentences.filter((s) => s.trajectory && s.trajectory.length);
    const frames = [];
    for (const s of src) {
      s.trajectory.forEach((p, i) => frames.push({ sid: s.id, i, x: +p.x, y: +p.y, dwell: +p.dwell_ms || 0, clue: p.clue_box || null }));
    }
    S.frames = frames;
    scrubEl.max = String(Math.max(0, frames.length - 1));
    if (S.frame >= frames.length) S.frame = frames.length - 1;
    updateFrameUi();
  }
  const frameDuration = (f) => clamp(f.dwell || 300, 160, 1600) / S.speed;
  function setFrame(i, record) {
    if (!S.frames.length) return;
    S.frame = clamp(i, 0, S.frames.length - 1);
    S.frameT = 0;
    S.trajFocus = "play";
    setActive(S.frames[S.frame].sid);
    updateFrameUi();
    markDirty();
    if (record) event(record, { frame: S.frame });
  }
  function setActive(sid) {
    if (sid === S.activeSentence) return;
    if (S.activeSentence) { const el = sentEl(S.activeSentence); if (el) el.classList.remove("active"); }
    S.activeSentence = sid;
    if (sid) { const el = sentEl(sid); if (el) { el.classList.add("active"); scrollIntoViewIfNeeded(el); } }
  }
  function updateFrameUi() {
    const n = S.frames.length;
    scrubEl.value = String(Math.max(0, S.frame));
    frameEl.textContent = n ? `${Math.max(0, S.frame) + 1}/${n}` : "0/0";
  }
  function play(record) {
    if (!S.frames.length || S.playing) return;
    if (S.frame < 0 || S.frame >= S.frames.length - 1) setFrame(0);
    S.playing = true; S.frameT = 0; S.trajFocus = "play";
    updateToolbar();
    if (record !== false) event("play", { frame: S.frame, speed: S.speed });
  }
  function pause(record) {
    if (!S.playing) return;
    S.playing = false;
    updateToolbar();
    if (record !== false) event("pause", { frame: S.frame });
  }
  function advance(dt) {
    if (!S.playing || !S.frames.length) return;
    S.frameT += dt;
    let guard = 0;
    while (S.playing && S.frameT >= frameDuration(S.frames[S.frame]) && guard++ < 50) {
      S.frameT -= frameDuration(S.frames[S.frame]);
      if (S.frame >= S.frames.length - 1) {
        S.playing = false; S.frameT = 0; setActive(null); updateToolbar(); event("play_end", { frame: S.frame });
        break;
      }
      S.frame += 1;
      setActive(S.frames[S.frame].sid);
      updateFrameUi();
    }
    markDirty();
  }
  function setSpeed(v, record) {
    S.speed = clamp(+v || 1, 0.5, 4);
    speedEl.value = String(S.speed);
    if (record) event("speed", { speed: S.speed });
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
  function rectOf(b) {
    const [x0, y0] = toScreen(b.x_min, b.y_min);
    const [x1, y1] = toScreen(b.x_max, b.y_max);
    return [x0, y0, x1 - x0, y1 - y0];
  }
  function drawLabel(text, x, y, color) {
    ctx.font = "600 12px system-ui, sans-serif";
    const w = ctx.measureText(text).width + 8;
    const ty = y - 18 < 2 ? y + 2 : y - 18;
    ctx.fillStyle = "rgba(0,0,0,0.72)";
    ctx.fillRect(x, ty, w, 16);
    ctx.fillStyle = color;
    ctx.fillText(text, x + 4, ty + 12);
  }
  function drawBoxes() {
    const selSid = S.selectedSentence;
    for (const b of S.boxes) {
      const color = colorOf(b.label);
      const [x, y, w, h] = rectOf(b);
      const selected = b.id === S.selectedBox;
      const related = !selected && selSid && (b.sentence_id === selSid || (b.also || []).includes(selSid));
      const dim = (selSid || S.selectedBox) && !selected && !related;
      ctx.save();
      if (b.status === "rejected") {
        ctx.setLineDash([4, 4]);
        ctx.strokeStyle = "rgba(255,95,95,0.55)";
        ctx.lineWidth = 1;
        ctx.strokeRect(x, y, w, h);
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + w, y + h); ctx.stroke();
        ctx.restore();
        continue;
      }
      ctx.globalAlpha = dim ? 0.45 : 1;
      ctx.strokeStyle = color;
      ctx.lineWidth = selected ? 3 : (related ? 2.5 : 1.6);
      if (b.status === "added") ctx.setLineDash([8, 3]);
      if (selected) { ctx.shadowColor = color; ctx.shadowBlur = 10; }
      ctx.strokeRect(x, y, w, h);
      ctx.shadowBlur = 0;
      ctx.setLineDash([]);
      const mark = b.status === "accepted" ? " ✓" : (b.status === "moved" || b.status === "resized") ? " ✎" : b.status === "added" ? " +" : "";
      drawLabel((b.label || "box") + mark, x, y, color);
      if (selected && !S.readonly) {
        ctx.fillStyle = "#fff";
        for (const [hx, hy] of [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) {
          ctx.fillRect(hx - 4, hy - 4, 8, 8);
          ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.strokeRect(hx - 4, hy - 4, 8, 8);
        }
      }
      ctx.restore();
    }
  }
  function radiusFor(dwell) { return 4 + Math.sqrt(Math.max(0, dwell)) / 2.2; }
  function drawTrajectory() {
    let pts, cur;
    const showSelection = S.selectedSentence && !S.playing && (S.trajFocus === "selection" || S.frame < 0);
    if (S.frame >= 0 && S.frames.length && !showSelection) {
      pts = S.frames.slice(0, S.frame + 1);
      cur = S.frame;
    } else if (showSelection) {
      const s = sentenceById(S.selectedSentence);
      pts = s ? s.trajectory.map((p, i) => ({ sid: s.id, i, x: +p.x, y: +p.y, dwell: +p.dwell_ms || 0, clue: p.clue_box })) : [];
      cur = -1;
    } else {
      return;
    }
    if (!pts.length) return;
    const n = pts.length;
    ctx.save();
    if (S.show.traj) {
      for (let k = 1; k < n; k++) {
        const age = cur >= 0 ? (n - 1 - k) : 0;
        const a = clamp(1 - age / 10, 0.12, 0.9);
        const [x0, y0] = toScreen(pts[k - 1].x, pts[k - 1].y);
        const [x1, y1] = toScreen(pts[k].x, pts[k].y);
        ctx.strokeStyle = `rgba(255,214,90,${a})`;
        ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      }
      for (let k = 0; k < n; k++) {
        const p = pts[k];
        const age = cur >= 0 ? (n - 1 - k) : 0;
        const a = clamp(1 - age / 10, 0.15, 0.85);
        const [x, y] = toScreen(p.x, p.y);
        const r = radiusFor(p.dwell);
        const col = colorOf((sentenceById(p.sid) || {}).label);
        ctx.globalAlpha = a;
        ctx.fillStyle = "rgba(255,214,90,0.18)";
        ctx.strokeStyle = col;
        ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.arc(x, y, r, 0, Math.PI * 2); ctx.fill(); ctx.stroke();
        if (cur < 0) {
          ctx.globalAlpha = 1;
          ctx.fillStyle = "#fff"; ctx.font = "600 10px system-ui, sans-serif";
          ctx.fillText(String(k + 1), x + r + 2, y - r + 2);
        }
      }
      ctx.globalAlpha = 1;
    }
    const curPt = cur >= 0 ? pts[n - 1] : null;
    if (curPt) {
      const [x, y] = toScreen(curPt.x, curPt.y);
      const r = radiusFor(curPt.dwell);
      const pulse = S.playing ? 0.5 + 0.5 * Math.sin(performance.now() / 140) : 1;
      if (S.show.traj) {
        ctx.strokeStyle = "#ffd65a"; ctx.lineWidth = 3;
        ctx.beginPath(); ctx.arc(x, y, r + 3 + 3 * pulse, 0, Math.PI * 2); ctx.stroke();
        ctx.fillStyle = "#ffd65a";
        ctx.beginPath(); ctx.arc(x, y, 3.5, 0, Math.PI * 2); ctx.fill();
      }
      if (S.show.clues && curPt.clue) {
        const [bx, by, bw, bh] = rectOf(curPt.clue);
        ctx.setLineDash([5, 4]);
        ctx.strokeStyle = "#5fe3ff"; ctx.lineWidth = 1.8;
        ctx.strokeRect(bx, by, bw, bh);
        ctx.setLineDash([]);
        drawLabel("clue", bx, by + bh + 20, "#5fe3ff");
      }
    } else if (S.show.clues && cur < 0) {
      ctx.setLineDash([5, 4]); ctx.strokeStyle = "rgba(95,227,255,0.6)"; ctx.lineWidth = 1.2;
      for (const p of pts) if (p.clue) { const [bx, by, bw, bh] = rectOf(p.clue); ctx.strokeRect(bx, by, bw, bh); }
      ctx.setLineDash([]);
    }
    ctx.restore();
  }
  function drawAnswerBox() {
    const [x, y, w, h] = rectOf(S.answerBox);
    ctx.save(); ctx.setLineDash([10, 4]); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.strokeRect(x, y, w, h);
    ctx.restore(); drawLabel("answer", x, y, "#ffffff");
  }
  function drawRubber() {
    const d = S.drag;
    const b = normBox(d.n0, d.n1);
    const [x, y, w, h] = rectOf(b);
    ctx.save(); ctx.setLineDash([6, 3]); ctx.strokeStyle = "#5fd7d7"; ctx.lineWidth = 2; ctx.strokeRect(x, y, w, h); ctx.restore();
  }
  function measureText(m) {
    const img = S.img;
    const dxp = (m.b[0] - m.a[0]) * img.width, dyp = (m.b[1] - m.a[1]) * img.height;
    if (img.spacing && img.spacing.length === 2) {
      const mm = Math.hypot(dxp * img.spacing[1], dyp * img.spacing[0]);
      return mm.toFixed(1) + " mm";
    }
    return Math.hypot(dxp, dyp).toFixed(0) + " px";
  }
  function drawMeasure() {
    const m = S.measure;
    const [x0, y0] = toScreen(m.a[0], m.a[1]);
    const [x1, y1] = toScreen(m.b[0], m.b[1]);
    ctx.save(); ctx.strokeStyle = "#7CFC00"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    for (const [x, y] of [[x0, y0], [x1, y1]]) { ctx.beginPath(); ctx.arc(x, y, 3, 0, Math.PI * 2); ctx.stroke(); }
    ctx.restore();
    drawLabel(measureText(m), x1 + 6, y1 + 8, "#7CFC00");
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

  // ------------------------------------------------------------------ report panel
  function sentEl(id) { return listEl.querySelector(`[data-sid="${CSS.escape(id)}"]`); }
  function scrollIntoViewIfNeeded(el) {
    const r = el.getBoundingClientRect(), p = listEl.getBoundingClientRect();
    if (r.top < p.top || r.bottom > p.bottom) el.scrollIntoView({ block: "nearest" });
  }
  function orderedSentences() {
    const out = [];
    for (const sec of ["findings", "impression"]) for (const s of S.sentences) if (s.section === sec) out.push(s);
    for (const s of S.sentences) if (s.section !== "findings" && s.section !== "impression") out.push(s);
    return out;
  }
  function renderReport() {
    const keep = {};
    const ta = listEl.querySelector("textarea");
    if (ta) { keep.text = ta.value; keep.start = ta.selectionStart; keep.end = ta.selectionEnd; keep.focus = document.activeElement === ta; }
    const reasonSel = listEl.querySelector(".gx-reason"), sigSel = listEl.querySelector(".gx-significant");
    if (reasonSel) keep.reason = reasonSel.value;
    if (sigSel) keep.sig = sigSel.value;
    const scroll = listEl.scrollTop;
    const parts = [];
    const ordered = orderedSentences();
    S.order = ordered.map((s) => s.id);
    for (const sec of ["findings", "impression"]) {
      const items = ordered.filter((s) => s.section === sec);
      if (!items.length && !(S.adding && S.adding.section === sec)) continue;
      parts.push(`<div class="gx-section-title">${sec}</div>`);
      for (const s of items) {
        parts.push(sentenceHtml(s));
        if (S.adding && S.adding.after === s.id) parts.push(addEditorHtml());
      }
      if (S.adding && S.adding.section === sec && !S.adding.after) parts.push(addEditorHtml());
    }
    if (!S.sentences.length && !S.adding) parts.push(`<div class="gx-section-title">No sentences in the draft</div>`);
    listEl.innerHTML = parts.join("");
    listEl.scrollTop = scroll;
    const nta = listEl.querySelector("textarea");
    if (nta && keep.text != null) {
      nta.value = keep.text;
      if (keep.reason != null && listEl.querySelector(".gx-reason")) listEl.querySelector(".gx-reason").value = keep.reason;
      if (keep.sig != null && listEl.querySelector(".gx-significant")) listEl.querySelector(".gx-significant").value = keep.sig;
      if (keep.focus) { nta.focus(); try { nta.setSelectionRange(keep.start, keep.end); } catch (e) { /* ignore */ } }
    }
    renderHead();
  }
  function sentenceHtml(s) {
    const cls = ["gx-sent"];
    if (s.id === S.selectedSentence) cls.push("selected");
    if (s.id === S.activeSentence) cls.push("active");
    if (s.status === "deleted") cls.push("gx-deleted");
    const conf = confidenceHtml(s);
    const chip = s.label ? `<span class="gx-chip">${esc(s.label)}</span>` : `<span class="gx-chip">${s.status === "added" ? "reader" : "—"}</span>`;
    const dis = S.readonly ? " disabled" : "";
    const id = esc(s.id);
    let body = `<div class="gx-sent-text" data-testid="ws-sentence-text-${id}">${esc(s.final_text)}</div>`;
    if (s.status === "edited" && s.final_text !== s.text) body += `<div class="gx-sent-orig" title="drafted text">${esc(s.text)}</div>`;
    const flag = s.status === "deleted" ? null : textFlag(s.final_text);
    if (flag) body += `<div class="gx-flag" data-testid="ws-flag-${id}" title="Check this sentence before signing">⚠ looks truncated or garbled: ${esc(flag)}</div>`;
    if (s.evidence_of) body += `<div class="gx-evidence" data-testid="ws-evidence-${id}">restates ${esc(s.evidence_of)}: same box</div>`;
    const refused = S.refused[s.id];
    if (refused) body += `<div class="gx-refused" data-testid="ws-refused-${id}">✗ not saved: ${esc(refused)}</div>`;
    if (S.editing === s.id) {
      body = editorHtml(S.editDraft != null ? S.editDraft : s.final_text, true);
    }
    return `<div class="${cls.join(" ")}" data-sid="${id}" data-testid="ws-sentence-${id}" style="--gx-c:${colorOf(s.label)}">
      <div class="gx-sent-head">${chip}${conf}<span class="gx-st gx-st-${esc(s.status)}" data-testid="ws-status-${id}">${esc(STATUS_TEXT[s.status] || s.status)}</span></div>
      ${body}
      <div class="gx-sent-actions">
        <button class="gx-btn-accept" data-act="accept" data-testid="ws-accept-${id}" title="Accept (A)"${dis}>✓ Accept</button>
        <button data-act="edit" data-testid="ws-edit-${id}" title="Edit (E)"${dis}>✎ Edit</button>
        <button class="gx-btn-delete" data-act="delete" data-testid="ws-delete-${id}" title="Delete (D)"${dis}>✕ Delete</button>
      </div></div>`;
  }
  // One number per sentence. For a finding sentence it is the finding head's probability of the sentence's label --
  // the number the "Model finding probabilities" chart shows; otherwise the wording confidence (mean probability of
  // the sentence's words), said so in the tooltip.
  function confidenceHtml(s) {
    const p = s.label != null && S.findingProb && S.findingProb[s.label] != null ? S.findingProb[s.label] : null;
    let value, tip;
    if (p != null) {
      value = p;
      tip = `Finding probability of ${s.label}: ${p.toFixed(2)} — the model's finding head, the same number as the ` +
        `"Model finding probabilities" chart.` + (s.confidence != null ? ` Wording confidence of this sentence: ${s.confidence.toFixed(2)}.` : "");
    } else if (s.confidence != null) {
      value = +s.confidence;
      tip = `Wording confidence: ${value.toFixed(2)} — the mean probability the model gave the words of this sentence ` +
        `(no finding probability for ${s.label ? s.label : "this sentence"}).`;
    } else {
      return "";
    }
    return `<span class="gx-conf${value < 0.5 ? " gx-low" : ""}" data-testid="ws-conf-${esc(s.id)}" title="${esc(tip)}">${value.toFixed(2)}</span>`;
  }
  function editorHtml(text, withReason) {
    const reason = withReason ? `<div class="gx-row">Reason
        <select class="gx-reason" data-testid="ws-edit-reason"><option value="">—</option><option>finding</option>
        <option>location</option><option>severity</option><option>style</option><option>other</option></select>
        Clinically significant <select class="gx-significant" data-testid="ws-edit-significant"><option value="">—</option>
        <option value="yes">yes</option><option value="no">no</option></select></div>` : "";
    return `<div class="gx-editor"><textarea data-testid="ws-edit-text" spellcheck="true">${esc(text)}</textarea>${reason}
      <div class="gx-row"><button class="gx-save" data-act="save" data-testid="ws-edit-save">Save (Ctrl+Enter)</button>
      <button data-act="cancel" data-testid="ws-edit-cancel">Cancel (Esc)</button></div></div>`;
  }
  function addEditorHtml() {
    return `<div class="gx-sent selected gx-adding" data-testid="ws-sentence-new"><div class="gx-sent-head"><span class="gx-chip">new sentence</span>
      <select class="gx-add-section" data-testid="ws-add-section"><option value="findings"${S.adding.section === "findings" ? " selected" : ""}>findings</option>
      <option value="impression"${S.adding.section === "impression" ? " selected" : ""}>impression</option></select></div>
      ${editorHtml("", false)}</div>`;
  }
  function renderHead() {
    const total = S.sentences.length;
    const decided = S.sentences.filter((s) => s.status !== "pending").length;
    $(".gx-progress").textContent = total ? `${decided}/${total} reviewed` : "";
    const loading = S.studyKey != null && !imageIsCurrent();
    studyEl.textContent = S.studyKey ? `· ${S.studyKey}` + (loading ? " — loading image…" : "") : "";
    studyEl.classList.toggle("gx-study-loading", loading);
    const banners = [];
    if (S.readonly) banners.push(`<div class="gx-readonly-banner" data-testid="ws-readonly">Signed — read only</div>`);
    const warns = (S.value && S.value.warnings) || [];
    if (warns.length) banners.push(`<div class="gx-warnings" data-testid="ws-warnings">⚠ ${warns.map(esc).join(" · ")}</div>`);
    $(".gx-banners").innerHTML = banners.join("");
  }
  function updateSentenceEl(s) {
    const el = sentEl(s.id);
    if (!el) { renderReport(); return; }
    const tmp = document.createElement("div");
    tmp.innerHTML = sentenceHtml(s);
    el.replaceWith(tmp.firstElementChild);
    renderHead();
  }
  function updateToolbar() {
    const ro = S.readonly;
    const set = (act, on) => { const b = element.querySelector(`[data-act="${act}"]`); if (b) b.classList.toggle("gx-on", !!on); };
    set("play", S.playing); set("boxes", S.show.boxes); set("clues", S.show.clues); set("traj", S.show.traj);
    set("invert", S.invert); set("draw", S.mode === "draw"); set("measure", S.mode === "measure"); set("wl", S.mode === "wl");
    for (const sel of ["ws-add-sentence", "ws-draw-box", "ws-box-accept", "ws-box-reject", "ws-undo",
      "ws-signoff-accept", "ws-signoff-modify", "ws-signoff-reject", "ws-ask"]) {
      const b = element.querySelector(`[data-testid="${sel}"]`);
      if (b) b.disabled = ro || S.sessionId == null;
    }
    const bx = S.selectedBox && boxById(S.selectedBox);
    boxInfoEl.textContent = bx ? `Box: ${bx.label || "(unlabelled)"} · ${bx.status}` + (bx.sentence_id ? ` · sentence ${bx.sentence_id}` : "")
      : (S.mode === "draw" ? "Drag on the image to draw a box" : "No box selected — click a box on the image");
    stage.classList.toggle("gx-drawing", S.mode === "draw");
    stage.classList.toggle("gx-measuring", S.mode === "measure");
    stage.classList.toggle("gx-wl", S.mode === "wl");
    markDirty();
  }

  // ------------------------------------------------------------------ selection and decisions
  function selectSentence(id, source) {
    if (id === S.selectedSentence && source !== "box") { S.trajFocus = "selection"; markDirty(); return; }
    const prev = S.selectedSentence;
    S.selectedSentence = id;
    S.trajFocus = "selection";
    if (id) touch(id);
    if (!S.playing) setActive(null);   // one highlight at a time: the selection replaces the playback highlight
    if (source !== "box") {
      const bs = S.boxes.filter((b) => b.sentence_id === id || (b.also || []).includes(id));
      const b = bs.find((x) => x.status !== "rejected") || bs[0];
      S.selectedBox = b ? b.id : null;
      if (b) touch("box:" + b.id);
    }
    if (prev) { const el = sentEl(prev); if (el) el.classList.remove("selected"); }
    if (id) { const el = sentEl(id); if (el) { el.classList.add("selected"); scrollIntoViewIfNeeded(el); } }
    updateToolbar();
    event("select", { sentence_id: id, box_id: S.selectedBox, source: source || "click" });
  }
  function selectBox(id) {
    S.selectedBox = id;
    const b = id && boxById(id);
    if (b) touch("box:" + b.id);
    if (b && b.sentence_id && sentenceById(b.sentence_id)) selectSentence(b.sentence_id, "box");
    else { updateToolbar(); event("select", { box_id: id, source: "box" }); }
  }
  function moveSelection(delta) {
    const ids = S.order;
    if (!ids.length) return;
    let i = ids.indexOf(S.selectedSentence);
    i = i < 0 ? (delta > 0 ? 0 : ids.length - 1) : clamp(i + delta, 0, ids.length - 1);
    selectSentence(ids[i], "keyboard");
  }
  function canEdit() { return !S.readonly && S.sessionId != null; }
  function decideSentence(id, decision, extra) {
    const s = sentenceById(id);
    if (!s || !canEdit()) return;
    const duration = durationFor(id);
    const prev = { status: s.status, final_text: s.final_text };
    touch(id);
    delete S.refused[id];
    if (decision === "edited") s.final_text = extra.final_text;
    if ((decision === "accepted" || decision === "accepted_at_signoff") && s.status === "deleted") s.final_text = s.final_text || s.text;
    s.status = s.status === "added" && decision !== "deleted" ? "added" : decision;
    if (decision === "edited" && s.status === "added") s.status = "added";
    S.editing = null; S.editDraft = null;
    updateSentenceEl(s);
    prev.after = s.status;
    send("decide_sentence", Object.assign({ sentence_id: id, decision, final_text: s.final_text, error_category: null,
      clinically_significant: null, duration_ms: duration }, extra || {}), null, { prev });
  }
  function startEdit(id) {
    if (!canEdit() || !sentenceById(id)) return;
    if (S.selectedSentence !== id) selectSentence(id, "edit");
    S.editing = id; S.editDraft = null; S.adding = null;
    touch(id);
    renderReport();
    const ta = listEl.querySelector("textarea");
    if (ta) { ta.focus(); ta.setSelectionRange(ta.value.length, ta.value.length); }
    event("edit_start", { sentence_id: id });
  }
  function saveEdit() {
    const ta = listEl.querySelector("textarea");
    if (!ta) return;
    if (S.adding) {
      const text = ta.value.trim();
      const secSel = listEl.querySelector(".gx-add-section");
      const section = secSel ? secSel.value : S.adding.section;
      if (!text) { setStatus("The new sentence is empty", "err"); return; }
      const localId = "new-" + (++S.localSeq);
      const after = S.adding.after;
      const s = { id: localId, section, region: null, label: null, text, confidence: null, observation_box: null,
                  trajectory: [], status: "added", final_text: text };
      const idx = after ? S.sentences.findIndex((x) => x.id === after) : -1;
      if (idx >= 0 && sentenceById(after).section === section) S.sentences.splice(idx + 1, 0, s); else S.sentences.push(s);
      const started = S.adding.startedAt;
      S.adding = null;
      S.selectedSentence = localId;
      renderReport();
      send("add_sentence", { text, section, after_sentence_id: after || null, duration_ms: nowTs() - started }, (res) => {
        if (res && res.sentence_id && String(res.sentence_id) !== localId) renameSentence(localId, String(res.sentence_id));
      }, { localId });
      return;
    }
    const id = S.editing;
    const s = sentenceById(id);
    if (!s) return;
    const text = ta.value.trim();
    const reason = (listEl.querySelector(".gx-reason") || {}).value || null;
    const sig = (listEl.querySelector(".gx-significant") || {}).value || "";
    if (!text) { setStatus("Empty text — use Delete (D) to remove a sentence", "err"); return; }
    if (text === s.final_text && !reason && !sig) {
      S.editing = null; updateSentenceEl(s);
      if (s.status === "pending") decideSentence(id, "accepted");
      return;
    }
    decideSentence(id, "edited", { final_text: text, error_category: reason || null,
      clinically_significant: sig === "yes" ? true : sig === "no" ? false : null });
  }
  function cancelEdit() {
    if (S.adding) { S.adding = null; renderReport(); return true; }
    if (S.editing) { const s = sentenceById(S.editing); S.editing = null; if (s) updateSentenceEl(s); return true; }
    return false;
  }
  function startAdd() {
    if (!canEdit()) return;
    S.editing = null;
    const sel = S.selectedSentence && sentenceById(S.selectedSentence);
    S.adding = { after: sel ? sel.id : null, section: sel ? sel.section : "findings", startedAt: nowTs() };
    renderReport();
    const ta = listEl.querySelector("textarea");
    if (ta) { ta.focus(); ta.scrollIntoView({ block: "nearest" }); }
  }
  function renameSentence(from, to) {
    S.idMap[from] = to;
    const s = sentenceById(from);
    if (s) s.id = to;
    for (const b of S.boxes) if (b.sentence_id === from) b.sentence_id = to;
    if (S.selectedSentence === from) S.selectedSentence = to;
    if (S.editing === from) S.editing = to;
    if (from in S.firstTouch) S.firstTouch[to] = S.firstTouch[from];
    renderReport();
  }

  // boxes
  const boxCoords = (b) => [b.x_min, b.y_min, b.x_max, b.y_max].map((v) => Math.round(v * 1e5) / 1e5);
  function decideBox(b, decision, before) {
    if (!b || !canEdit()) return;
    const prev = before || { status: b.status, coords: [b.x_min, b.y_min, b.x_max, b.y_max] };
    if (!(b.status === "added" && decision !== "rejected")) b.status = decision;
    updateToolbar();
    sendBoxDecision(b, decision, Object.assign({}, prev, { after: b.status }));
  }
  // One box is the evidence of a findings sentence and of the impression sentences that restate it (b.also): a
  // decision on it is recorded for each of them, and the link itself as an event.
  function sendBoxDecision(b, decision, prev) {
    const duration = durationFor("box:" + b.id);
    touch("box:" + b.id);
    delete S.refused["box:" + b.id];
    send("decide_box", { box_id: b.id, decision, box: boxCoords(b), linked_sentence_id: b.sentence_id,
      duration_ms: duration }, null, decision === "added" ? { localId: b.id } : { prev });
    for (const other of b.also || []) {
      send("decide_box", { box_id: other, decision, box: decision === "rejected" ? null : boxCoords(b),
        linked_sentence_id: other, duration_ms: duration });
    }
    if ((b.also || []).length) event("linked_box_decision", { box_id: b.id, also: b.also, decision });
  }
  function pushUndo(b) { S.undo.push({ id: b.id, coords: [b.x_min, b.y_min, b.x_max, b.y_max], status: b.status, existed: true }); }
  function undoBox() {
    const u = S.undo.pop();
    if (!u || !canEdit()) return;
    const b = boxById(u.id);
    if (!b) return;
    if (!u.existed) {
      // undo of a drawn box: reject it
      decideBox(b, "rejected");
      event("undo", { box_id: u.id, action: "draw" });
      return;
    }
    [b.x_min, b.y_min, b.x_max, b.y_max] = u.coords;
    const prev = u.status;
    b.status = prev;
    event("undo", { box_id: b.id, restored_status: prev, box: boxCoords(b) });
    if (prev !== "pending") {
      sendBoxDecision(b, prev);
    } else if (b.orig) {
      // back to the drafted box: record it as moved back to the drafted coordinates
      sendBoxDecision(b, "moved");
    }
    updateToolbar();
  }
  function normBox(a, c) {
    return { x_min: clamp(Math.min(a[0], c[0]), 0, 1), y_min: clamp(Math.min(a[1], c[1]), 0, 1),
             x_max: clamp(Math.max(a[0], c[0]), 0, 1), y_max: clamp(Math.max(a[1], c[1]), 0, 1) };
  }
  function hitBox(sx, sy) {
    // handles of the selected box first, then the smallest box containing the point
    const sel = S.selectedBox && boxById(S.selectedBox);
    if (sel && sel.status !== "rejected" && S.show.boxes && !S.readonly) {
      const [x, y, w, h] = rectOf(sel);
      const corners = [[x, y], [x + w, y], [x, y + h], [x + w, y + h]];
      for (let k = 0; k < 4; k++) if (Math.abs(sx - corners[k][0]) <= 7 && Math.abs(sy - corners[k][1]) <= 7) return { box: sel, corner: k };
    }
    if (!S.show.boxes) return null;
    let best = null, bestArea = Infinity;
    for (const b of S.boxes) {
      const [x, y, w, h] = rectOf(b);
      if (sx >= x - 3 && sx <= x + w + 3 && sy >= y - 3 && sy <= y + h + 3) {
        const area = w * h + (b.status === "rejected" ? 1e9 : 0);
        if (area < bestArea) { best = b; bestArea = area; }
      }
    }
    return best ? { box: best, corner: -1 } : null;
  }

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

  // ------------------------------------------------------------------ clicks in the panel / toolbar
  element.addEventListener("click", (e) => {
    noteInput();
    const btn = e.target.closest("[data-act]");
    const sentNode = e.target.closest(".gx-sent[data-sid]");
    if (btn && !btn.disabled) {
      const act = btn.dataset.act;
      const sid = sentNode ? sentNode.dataset.sid : null;
      e.stopPropagation();
      doAction(act, sid);
      return;
    }
    if (sentNode && !e.target.closest(".gx-editor")) selectSentence(sentNode.dataset.sid, "click");
  });
  scrubEl.addEventListener("input", () => { noteInput(); if (S.playing) pause(false); setFrame(+scrubEl.value); });
  scrubEl.addEventListener("change", () => event("scrub", { frame: S.frame }));
  speedEl.addEventListener("change", () => { noteInput(); setSpeed(speedEl.value, true); root.focus({ preventScroll: true }); });
  askInput.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); doAction("ask"); } });

  function doAction(act, sid) {
    const cur = sid || S.selectedSentence;
    switch (act) {
      case "play": play(); break;
      case "pause": pause(); break;
      case "step": pause(false); setFrame(S.frame + 1, "step"); break;
      case "stepback": pause(false); setFrame(Math.max(0, S.frame - 1), "step_back"); break;
      case "boxes": case "clues": case "traj": {
        const k = act === "traj" ? "traj" : act;
        S.show[k] = !S.show[k]; updateToolbar(); event("toggle", { overlay: k, on: S.show[k] }); break;
      }
      case "preset1": preset("lung"); break;
      case "preset2": preset("mediastinum"); break;
      case "preset3": preset("bone"); break;
      case "preset0": if (S.img) { applyWindow(S.img.window.center, S.img.window.width, false); event("window", { preset: "voi" }); } break;
      case "invert": S.invert = !S.invert; S.wlDirty = true; updateToolbar(); event("invert", { on: S.invert }); break;
      case "fit": fitView(); event("fit", {}); break;
      case "reset": resetView(true); updateToolbar(); break;
      case "wl": S.mode = S.mode === "wl" ? null : "wl"; updateToolbar(); break;
      case "measure": S.mode = S.mode === "measure" ? null : "measure"; if (!S.mode) S.measure = null; updateToolbar(); break;
      case "draw": if (canEdit()) { S.mode = S.mode === "draw" ? null : "draw"; updateToolbar(); event("draw_mode", { on: S.mode === "draw" }); } break;
      case "help": toggleHelp(true); break;
      case "closehelp": toggleHelp(false); break;
      case "accept": if (cur) { if (S.editing === cur) cancelEdit(); decideSentence(cur, "accepted"); } break;
      case "edit": if (cur) startEdit(cur); break;
      case "delete": if (cur) decideSentence(cur, "deleted"); break;
      case "save": saveEdit(); break;
      case "cancel": cancelEdit(); break;
      case "add": startAdd(); break;
      case "boxaccept": decideBox(S.selectedBox && boxById(S.selectedBox), "accepted"); break;
      case "boxreject": { const b = S.selectedBox && boxById(S.selectedBox); if (b && canEdit()) { pushUndo(b); decideBox(b, "rejected"); } break; }
      case "undo": undoBox(); break;
      case "so-accept": {
        const n = modificationCount();
        if (n) confirmBox("Sign as drafted?", `You changed ${n} item${n > 1 ? "s" : ""} of the draft; "Sign modified" records them as a modified report.\n\n` + finalReport(),
          () => signWhenNothingPending("accept"));
        else signWhenNothingPending("accept");
        break;
      }
      case "so-modify": signWhenNothingPending("modify"); break;
      case "so-reject": confirmBox("Reject this draft?", "The draft will be signed as rejected and the next case opens.\n\n" + finalReport(),
        () => signOff("reject")); break;
      case "confirm-ok": { const f = S.confirmFn; closeConfirm(); if (f) f(); break; }
      case "confirm-rest": { const f = S.restFn; closeConfirm(); if (f) f(); break; }
      case "confirm-cancel": closeConfirm(); break;
      case "ask": ask(); break;
      default: break;
    }
    markDirty();
  }
  function preset(name) {
    if (!S.img) return;
    const p = S.img.presets && S.img.presets[name];
    if (!p) { setStatus(`No ${name} preset for this image`, "busy"); return; }
    applyWindow(+p[0], +p[1], false);
    event("window", { preset: name, center: +p[0], width: +p[1] });
  }
  function toggleHelp(on) {
    helpEl.hidden = !on;
    if (on) event("help", {});
  }
  function confirmBox(title, text, fn, rest) {
    $(".gx-confirm-title").textContent = title;
    $(".gx-confirm-text").textContent = text;
    S.confirmFn = fn || null;
    S.restFn = rest || null;
    const ok = $('[data-testid="ws-confirm-ok"]'), restBtn = $('[data-testid="ws-confirm-accept-rest"]');
    ok.hidden = !fn;
    restBtn.hidden = !rest;
    $('[data-testid="ws-confirm-cancel"]').textContent = rest ? "Go back and review them" : "Cancel";
    confirmEl.hidden = false;
    (fn ? ok : $('[data-testid="ws-confirm-cancel"]')).focus();
  }
  function closeConfirm() { confirmEl.hidden = true; S.confirmFn = null; S.restFn = null; root.focus({ preventScroll: true }); }

  // Signing never turns silence into a decision: with anything pending the reader either goes back or accepts the
  // rest explicitly, recorded as "accepted_at_signoff" (not as ordinary accepts).
  const pendingSentences = () => orderedSentences().filter((s) => s.status === "pending");
  const pendingBoxes = () => S.boxes.filter((b) => {   // a deleted sentence's box goes with its sentence
    const s = b.sentence_id != null ? sentenceById(b.sentence_id) : null;
    return b.status === "pending" && !(s && s.status === "deleted");
  });
  function signWhenNothingPending(decision) {
    if (!canEdit()) return;
    const ps = pendingSentences(), pb = pendingBoxes();
    if (!ps.length && !pb.length) { signOff(decision); return; }
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const flagged = ps.filter((s) => textFlag(s.final_text));
    const lines = ps.map((s) => `• ${s.final_text}` + (textFlag(s.final_text) ? `   ⚠ ${textFlag(s.final_text)}` : ""));
    if (pb.length) lines.push("", "Boxes: " + pb.map((b) => `${b.label || "box"} (${b.sentence_id || b.id})`).join(", "));
    const text = `${plural(ps.length, "sentence")} and ${plural(pb.length, "box").replace("boxs", "boxes")} are still pending.` +
      (flagged.length ? ` ${flagged.length} of the sentences look truncated or garbled.` : "") +
      `\n\n"Accept the rest" records each of them as accepted at sign-off, without review.\n\n` + lines.join("\n");
    confirmBox(`Sign with ${plural(ps.length, "sentence")} and ${plural(pb.length, "box").replace("boxs", "boxes")} pending?`, text, null,
      () => { acceptRest(ps, pb); signOff(decision, true); });
    event("signoff_pending_dialog", { decision, sentences: ps.map((s) => s.id), boxes: pb.map((b) => b.id) });
  }
  function acceptRest(ps, pb) {
    event("accept_rest", { sentences: ps.map((s) => s.id), boxes: pb.map((b) => b.id) });
    for (const s of ps) decideSentence(s.id, "accepted_at_signoff");
    for (const b of pb) decideBox(b, "accepted_at_signoff");
  }

  function modificationCount() {
    return S.sentences.filter((s) => s.status === "edited" || s.status === "deleted" || s.status === "added").length +
      S.boxes.filter((b) => ["moved", "resized", "rejected", "added"].includes(b.status)).length;
  }
  function finalReport() {
    const parts = [];
    for (const sec of ["findings", "impression"]) {
      const t = S.sentences.filter((s) => s.section === sec && s.status !== "deleted").map((s) => s.final_text.trim()).filter(Boolean).join(" ");
      if (t) parts.push(sec.toUpperCase() + ": " + t);
    }
    return parts.join("\n\n");
  }
  function signOff(decision, acceptRestChosen) {
    if (!canEdit()) return;
    tickTiming();
    const sid = S.sessionId, key = S.studyKey;
    S.readonly = true;
    pause(false);
    renderReport(); updateToolbar();
    setStatus(`Signing off (${decision})…`, "busy");
    send("sign_off", { decision, final_report: finalReport(), active_ms: Math.round(S.timing.active),
      idle_ms: Math.round(S.timing.idle), hidden_ms: Math.round(S.timing.hidden), accept_rest: !!acceptRestChosen }, (res) => {
      S.signedOff = { decision, session_id: sid, study_key: key, result: res };
      setStatus(`✓ signed off (${decision})`, "ok");
      try { trigger("signed_off", { session_id: sid, study_key: key, decision }); } catch (e) { console.error(e); }
    });
  }
  async function ask() {
    const q = askInput.value.trim();
    if (!q || !canEdit()) return;
    const fn = server && server.ask;
    if (typeof fn !== "function") { askAnswer.textContent = "Asking is not available here."; return; }
    const study = S.studyKey;
    const n = (S.askCount = (S.askCount || 0) + 1);
    askQuestion.textContent = `Q${n}: ${q}`;
    askAnswer.textContent = "Asking…";
    askAnswer.classList.remove("gx-fresh");
    event("ask", { question: q.slice(0, 200) });
    const show = (text) => {
      if (S.studyKey !== study || S.askCount !== n) return;   // an answer about another case or an older question
      askAnswer.textContent = text;
      askAnswer.classList.remove("gx-fresh");
      void askAnswer.offsetWidth;   // restart the highlight so a repeated answer still looks new
      askAnswer.classList.add("gx-fresh");
    };
    try {
      const res = await withTimeout(fn({ session_id: S.sessionId, question: q }), 90000);
      if (!res || typeof res !== "object") { show("✗ no answer (server error or connection lost) — try again"); return; }
      if (res.ok === false) { show("✗ " + (res.error || "no answer")); return; }
      const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      show(`A${n} (${time}): ${res.answer || "(no answer)"}`);
      if (S.studyKey === study && S.askCount === n) { S.answerBox = res.box ? res.box : null; markDirty(); }
    } catch (e) {
      show("✗ " + ((e && e.message) || e) + " — try again");
    }
  }

  // ------------------------------------------------------------------ keyboard
  const TEXT_INPUTS = ["", "text", "search", "number", "email", "password", "url", "tel"];
  const isTyping = (t) => !!t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable ||
    (t.tagName === "INPUT" && TEXT_INPUTS.includes((t.getAttribute("type") || "").toLowerCase())));
  function onKey(e) {
    if (S.destroyed || !element.isConnected || element.offsetParent === null) return;
    const t = e.target;
    if (isTyping(t)) {
      if (element.contains(t) && t.tagName === "TEXTAREA") {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveEdit(); }
        else if (e.key === "Escape") { e.preventDefault(); cancelEdit(); root.focus({ preventScroll: true }); }
      }
      return;
    }
    if (e.altKey) return;
    noteInput();
    const k = e.key;
    if ((e.ctrlKey || e.metaKey) && (k === "z" || k === "Z")) { e.preventDefault(); undoBox(); return; }
    if (e.ctrlKey || e.metaKey) return;
    if (!confirmEl.hidden) { if (k === "Escape") closeConfirm(); else if (k === "Enter") doAction("confirm-ok"); e.preventDefault(); return; }
    if (!helpEl.hidden && (k === "Escape" || k === "?")) { toggleHelp(false); e.preventDefault(); return; }
    const map = {
      "1": "preset1", "2": "preset2", "3": "preset3", "0": "preset0", i: "invert", I: "invert", " ": "reset", r: "reset",
      f: "fit", b: "boxes", c: "clues", t: "traj", p: "playpause", k: "playpause", ".": "step", ",": "stepback",
      a: "accept", e: "edit", d: "delete", n: "add", x: "boxreject", v: "boxaccept", w: "draw", l: "wl", m: "measure",
      "?": "help", "]": "faster", "[": "slower", ArrowDown: "next", ArrowUp: "prev", Escape: "escape",
    };
    const act = map[k] || map[k.toLowerCase && k.length === 1 ? k.toLowerCase() : k];
    if (!act) return;
    e.preventDefault();
    if (S.sessionId == null && act !== "help") return;
    event("key", { key: k, action: act });
    switch (act) {
      case "playpause": S.playing ? pause() : play(); break;
      case "faster": setSpeed(S.speed >= 4 ? 4 : S.speed * 2, true); break;
      case "slower": setSpeed(S.speed <= 0.5 ? 0.5 : S.speed / 2, true); break;
      case "next": moveSelection(1); break;
      case "prev": moveSelection(-1); break;
      case "escape":
        if (!cancelEdit()) { S.mode = null; S.measure = null; S.drag = null; updateToolbar(); }
        break;
      default: doAction(act);
    }
  }
  document.addEventListener("keydown", onKey, true);

  // ------------------------------------------------------------------ active / idle / hidden time
  function tickTiming() {
    const t = performance.now();
    const T = S.timing;
    const dt = t - T.last;
    T.last = t;
    T[T.state] += dt;
    let next = document.hidden ? "hidden" : (t - T.lastInput > S.idleMs ? "idle" : "active");
    if (next !== T.state) {
      if (T.state === "hidden") event("tab_visible", { hidden_ms: Math.round(T.hidden) });
      if (T.state === "idle") event("idle_end", { idle_ms: Math.round(T.idle) });
      if (next === "hidden") event("tab_hidden", {});
      if (next === "idle") event("idle_start", { after_ms: S.idleMs });
      T.state = next;
    }
  }
  function noteInput() {
    S.timing.lastInput = performance.now();
    if (S.timing.state === "idle") tickTiming();
  }
  const timingTimer = setInterval(tickTiming, 1000);
  const onVis = () => tickTiming();
  document.addEventListener("visibilitychange", onVis);
  const onMove = () => noteInput();
  element.addEventListener("pointermove", onMove, { passive: true });

  // ------------------------------------------------------------------ sizing, value wiring, test hooks
  const ro = new ResizeObserver(() => resizeCanvas());
  ro.observe(stage);
  resizeCanvas();

  // What the app itself reads (app/main.py waits for the new study's paint before drawing its chart). The test
  // getters are bundled only when GAZEX_TEST_HOOKS is set (app/workstation/test_hooks.js; component.bundled_js).
  const api = {};
  Object.defineProperty(api, "painted", { get: () => S.painted && imageIsCurrent(), enumerable: true });
  Object.defineProperty(api, "studyKey", { get: () => S.studyKey, enumerable: true });
  /*@GX_TEST_HOOKS@*/
  Object.freeze(api);
  window.gazexWorkstation = api;

  watch("value", () => loadValue(props.value));
  loadValue(props.value);
  adoptStoredQueues();

  window.__gxWsCleanup = () => {
    S.destroyed = true;
    cancelAnimationFrame(rafId);
    clearInterval(timingTimer);
    document.removeEventListener("keydown", onKey, true);
    document.removeEventListener("visibilitychange", onVis);
    ro.disconnect();
  };
})();
