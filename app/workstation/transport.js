  // Queue and transport (part of the workstation bundle, see workstation.js): the ordered queue of server calls,
  // localStorage replay of unacknowledged decisions, acknowledgements and refusals.
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
