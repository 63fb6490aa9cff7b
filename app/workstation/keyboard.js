  // Keyboard and actions (part of the workstation bundle, see workstation.js): the shortcut table and its help
  // overlay, the action table that toolbar/panel buttons and keys share, the keyboard handler.
  // ------------------------------------------------------------------ keyboard
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

  const helpHtml = SHORTCUTS.map(([title, rows]) =>
    `<table><tr><th colspan="2">${esc(title)}</th></tr>` +
    rows.map(([k, d]) => `<tr><td>${k.split(" / ").map((x) => `<kbd>${esc(x)}</kbd>`).join(" / ")}</td><td>${esc(d)}</td></tr>`).join("") +
    `</table>`).join("");
  $(".gx-help-grid").innerHTML = helpHtml;

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
  function toggleHelp(on) {
    helpEl.hidden = !on;
    if (on) event("help", {});
  }
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
