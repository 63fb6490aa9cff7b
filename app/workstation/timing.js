  // Active / idle / hidden reading time (part of the workstation bundle, see workstation.js).
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
