  // The report panel (part of the workstation bundle, see workstation.js): sentences, selection, decisions, edits,
  // added sentences, the confirm dialog, sign-off (with the pending-items dialog) and the ask box.
  // ------------------------------------------------------------------ report panel
  const STATUS_TEXT = { accepted_at_signoff: "accepted at sign-off" };
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
  // One number per sentence. A calibrated draft (evidence schema 4) shows the sentence's calibrated confidence: the
  // probability that the sentence is true. An older draft shows, for a finding sentence, the finding head's
  // probability of its label -- the number the "Model finding probabilities" chart shows; otherwise the wording
  // confidence (mean probability of the sentence's words). The tooltip says which.
  function confidenceHtml(s) {
    const p = s.label != null && S.findingProb && S.findingProb[s.label] != null ? S.findingProb[s.label] : null;
    let value, tip;
    if (S.confidenceCalibrated && s.confidence != null) {
      value = +s.confidence;
      tip = `Calibrated confidence: ${value.toFixed(2)} — the probability that this sentence is true (its finding, ` +
        `side and negations), calibrated on the validation split: of sentences shown ${value.toFixed(2)}, about ` +
        `${Math.round(value * 100)} in 100 were true.` + (p != null ? ` The "Model finding probabilities" chart shows ` +
        `${p.toFixed(2)} for ${s.label}: how likely the finding is present at all, not whether this sentence is right.` : "");
    } else if (p != null) {
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
  function moveSelection(delta) {
    const ids = S.order;
    if (!ids.length) return;
    let i = ids.indexOf(S.selectedSentence);
    i = i < 0 ? (delta > 0 ? 0 : ids.length - 1) : clamp(i + delta, 0, ids.length - 1);
    selectSentence(ids[i], "keyboard");
  }
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

  askInput.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); doAction("ask"); } });

  // ------------------------------------------------------------------ confirm dialog, sign-off, ask
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
