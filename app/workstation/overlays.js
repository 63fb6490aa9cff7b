  // Overlays and trajectory (part of the workstation bundle, see workstation.js): trajectory playback, the vector
  // overlays drawn over the matching image (boxes, trajectory, clue/answer boxes, ruler), box editing and decisions.
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

  scrubEl.addEventListener("input", () => { noteInput(); if (S.playing) pause(false); setFrame(+scrubEl.value); });
  scrubEl.addEventListener("change", () => event("scrub", { frame: S.frame }));
  speedEl.addEventListener("change", () => { noteInput(); setSpeed(speedEl.value, true); root.focus({ preventScroll: true }); });

  // ------------------------------------------------------------------ overlays
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

  function selectBox(id) {
    S.selectedBox = id;
    const b = id && boxById(id);
    if (b) touch("box:" + b.id);
    if (b && b.sentence_id && sentenceById(b.sentence_id)) selectSentence(b.sentence_id, "box");
    else { updateToolbar(); event("select", { box_id: id, source: "box" }); }
  }
