// GazeX Review workstation: X-ray viewer + animated inspection trajectory + boxes + report panel.
// The shell: layout, state and shared helpers. app/workstation/component.py assembles the bundle that runs as
// the body of gr.HTML's js_on_load ((element, trigger, props, server, upload, watch) are in scope): it prepends
// `const GX_CSS = "...";`, puts the concern files (transport, viewer, overlays, report, keyboard, timing) in at
// the concerns marker below -- one closure, one scope -- and test_hooks.js at the test-hooks marker only when asked.
// Contract: docs/workstation_contract.md.
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

  // ------------------------------------------------------------------ DOM
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

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
    <div class="gx-modal-card"><h3>Keyboard shortcuts</h3><div class="gx-help-grid"></div>
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

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.title = text;
    statusEl.className = "gx-status" + (kind ? " gx-" + kind + "-msg" : "");
  }
  function canEdit() { return !S.readonly && S.sessionId != null; }
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

  /*@GX_CONCERNS@*/

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
