// The trial page: decode both images before the clock starts, answer by keyboard or mouse,
// never lose an answer (kept in localStorage until the server acknowledges its token).
"use strict";
(() => {
  const root = document.getElementById("trial");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const tieAllowed = root.dataset.tie === "true";
  const outboxKey = `jodkit-outbox-${root.dataset.session}`;
  const panels = ["left", "right"].map((side) => {
    const el = document.getElementById(`panel-${side}`);
    return { side, el, viewport: el.querySelector(".viewport"), img: el.querySelector("img"),
             original: el.querySelector(".original"), readout: el.querySelector(".readout"),
             view: { x: 0, y: 0 } };
  });
  const $ = (id) => document.getElementById(id);
  const state = { trials: [], current: null, shownAt: 0, busy: true, locked: true, scale: 1,
                  flicked: false, zooms: 0, flickers: 0, cache: new Map() };

  const token = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
                                 (b) => b.toString(16).padStart(2, "0")).join("");
  const setStatus = (text) => { $("status").textContent = text; };
  const PENDING = `<h2>Answer pending</h2>
    <p>The server cannot be reached. Your answer is saved on this device and will be sent as
       soon as the connection returns; the next pair appears once it is stored.</p>
    <p class="muted">Keep this page open, or reopen it later on this computer.</p>`;
  const IMAGE_PROBLEM = `<h2>This pair cannot be shown</h2>
    <p>An image of this pair could not be loaded or decoded by this browser. All your answers
       so far are stored; the page keeps trying. If this message stays, please tell the
       experimenter.</p>`;
  const WAITING = `<h2>Waiting for the server</h2>
    <p>All your answers so far are stored. The next pair appears as soon as the server can be
       reached again.</p>`;

  // Retry delays that end early when the browser reports the network is back.
  const sleepers = new Set();
  function sleep(ms) {
    return new Promise((resolve) => {
      const done = () => { sleepers.delete(done); resolve(); };
      sleepers.add(done);
      setTimeout(done, ms);
    });
  }
  window.addEventListener("online", () => { for (const done of [...sleepers]) done(); });

  function load(src) {
    // One decoded Image per URL: the prefetched next pair is ready when its turn comes.
    if (!state.cache.has(src)) {
      const im = new Image();
      im.src = src;
      state.cache.set(src, im.decode().then(() => im, () => {
        state.cache.delete(src);  // fetched again on the next try
        const error = new Error("an image of this pair could not be loaded or decoded");
        error.image = true;
        throw error;
      }));
    }
    return state.cache.get(src);
  }

  // ---- magnification and pan ------------------------------------------------------------
  // One magnification for both panels, in device pixels per image pixel: 1 is the camera's
  // pixels 1:1. A pair opens at 1:1 when both images fit their panels, otherwise downscaled
  // (by the browser, never upscaled anywhere) just enough to fit, and says so. Zooming in
  // goes through 1:1 to whole multiples (pixels enlarged, drawn as blocks).
  function fitScale() {
    const dpr = window.devicePixelRatio;
    let fit = Infinity;
    for (const panel of panels) {
      const { clientWidth: w, clientHeight: h } = panel.viewport;
      const { naturalWidth: iw, naturalHeight: ih } = panel.img;
      if (iw && ih) fit = Math.min(fit, (w * dpr) / iw, (h * dpr) / ih);
    }
    return Number.isFinite(fit) ? fit : 1;
  }
  const defaultScale = () => Math.min(1, fitScale());
  // A percentage that never rounds a downscale up to "100%".
  const percent = (scale) => `${(scale * 100).toFixed(scale > 0.99 ? 1 : 0)}%`;
  function describe(scale) {
    if (Math.abs(scale - 1) < 1e-6) return "1:1";
    return scale > 1 ? `×${Math.round(scale)} (pixels enlarged)` : percent(scale);
  }
  function render() {
    const dpr = window.devicePixelRatio;
    const scale = state.scale;
    for (const panel of panels) {
      const { clientWidth: w, clientHeight: h } = panel.viewport;
      const { naturalWidth: iw, naturalHeight: ih } = panel.img;
      const cw = (iw * scale) / dpr, ch = (ih * scale) / dpr;
      // Snap to device pixels so that 1:1 really maps one image pixel to one screen pixel.
      const snap = (v) => Math.round(v * dpr) / dpr;
      const x = snap((w - cw) / 2 + panel.view.x), y = snap((h - ch) / 2 + panel.view.y);
      panel.img.style.width = `${cw}px`;
      panel.img.style.height = `${ch}px`;
      panel.img.style.transform = `translate(${x}px, ${y}px)`;
      panel.img.classList.toggle("pixelated", scale > 1);
      panel.readout.textContent = iw ? `${iw}×${ih} px at ${describe(scale)}` : "";
    }
    const downscaled = scale < 1 - 1e-6;
    root.dataset.scale = scale.toFixed(4);
    $("zoom-info").textContent = `both: ${describe(scale)}`;
    $("resample").hidden = !downscaled;
    $("resample").textContent = downscaled
      ? `downscaled to ${percent(scale)} by the browser: P for 1:1 pixels`
      : "";
    $("lock").textContent = state.locked ? "pan locked" : "pan unlocked";
  }
  function setScale(scale) {
    state.scale = Math.min(16, Math.max(0.05, scale));
    render();
  }
  function zoomIn() {
    const s = state.scale;
    // below 1:1 in steps of 1.5, stopping at 1:1; above it whole multiples only
    setScale(s < 1 - 1e-6 ? Math.min(1, s * 1.5) : Math.floor(s + 1e-6) + 1);
    state.zooms += 1;
  }
  function zoomOut() {
    const s = state.scale;
    setScale(s > 1 + 1e-6 ? Math.ceil(s - 1e-6) - 1 : s / 1.5);
    state.zooms += 1;
  }
  function resetView(scale = defaultScale()) {
    for (const p of panels) p.view = { x: 0, y: 0 };
    setScale(scale);
  }
  function targets(panel) { return state.locked ? panels : [panel]; }
  for (const panel of panels) {
    let drag = null;
    panel.viewport.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      panel.viewport.setPointerCapture(e.pointerId);
    });
    panel.viewport.addEventListener("pointermove", (e) => {
      if (!drag) return;
      for (const p of targets(panel)) { p.view.x += e.clientX - drag.x; p.view.y += e.clientY - drag.y; }
      drag = { x: e.clientX, y: e.clientY };
      render();
    });
    panel.viewport.addEventListener("pointerup", () => { drag = null; });
    panel.viewport.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.deltaY < 0) zoomIn(); else zoomOut();
    }, { passive: false });
  }

  // ---- showing a pair ------------------------------------------------------------------
  function flicker() {
    state.flicked = !state.flicked;
    state.flickers += 1;
    const [l, r] = panels;
    const [ls, rs] = [l.img.src, r.img.src];
    l.img.src = rs; r.img.src = ls;  // both already decoded: the swap is instant
    for (const p of panels) p.el.querySelector(".swapped").hidden = !state.flicked;
    render();
  }
  async function show(trial) {
    state.busy = true;
    const [left, right] = await Promise.all([load(trial.left.src), load(trial.right.src)]);
    state.current = trial;
    state.flicked = false; state.zooms = 0; state.flickers = 0;
    panels[0].img.src = left.src; panels[1].img.src = right.src;
    panels[0].original.href = trial.left.original; panels[1].original.href = trial.right.original;
    for (const p of panels) p.el.querySelector(".swapped").hidden = true;
    $("training").hidden = !trial.training;
    resetView();
    // The clock starts at the first frame that shows both decoded images.
    requestAnimationFrame(() => requestAnimationFrame((t) => {
      state.shownAt = t;
      state.busy = false;
      root.dataset.trial = trial.id;
      root.dataset.ready = "true";
    }));
  }
  function showProgress(progress) {
    $("count").textContent = `${progress.answered} / ${progress.planned}`;
    $("bar").style.width = `${(100 * progress.answered) / progress.planned}%`;
  }
  function overlay(html, pending = false) {
    // The overlay also hides the pair: while an answer or the next pair is outstanding,
    // the expert sees a message, never a stale pair that looks answerable.
    $("overlay").hidden = !html;
    $("overlay-text").innerHTML = html || "";
    root.classList.toggle("covered", Boolean(html));
    if (pending) root.dataset.pending = "true"; else delete root.dataset.pending;
  }

  async function request(url, options = {}) {
    const response = await fetch(url, { credentials: "same-origin", ...options,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, ...(options.headers || {}) } });
    if (response.status === 401) { window.location.reload(); throw new Error("login required"); }
    const body = await response.json().catch(() => ({}));
    return { status: response.status, body };
  }

  async function next() {
    const { status, body } = await request(root.dataset.nextUrl);
    if (status !== 200) throw new Error(body.error || `HTTP ${status}`);
    await present(body);
  }
  async function present(body) {
    // The next trials come from /next when the page opens, and with each answer's response.
    showProgress(body.progress);
    if (body.progress.finished) {
      state.busy = true;
      overlay(`<h2>Session complete</h2><p>Thank you! ${body.progress.answered} answers stored.</p>
               <p><a class="button" href="${root.dataset.homeUrl}">Back to campaigns</a></p>`);
      root.dataset.finished = "true";
      return;
    }
    if (body.progress.break_until) {
      state.busy = true;
      const until = new Date(body.progress.break_until);
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - new Date()) / 1000));
        overlay(`<h2>Time for a break</h2><p>Rest your eyes. You can continue in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}.</p>`);
        if (left > 0) setTimeout(tick, 1000); else next().catch(retryLater);
      };
      tick();
      return;
    }
    if (body.progress.campaign !== "active") {
      state.busy = true;
      overlay(`<h2>The campaign is ${body.progress.campaign}</h2><p>The experimenter has stopped
        handing out pairs for now. All your answers are stored; this page checks again every
        half minute.</p>`);
      sleep(30000).then(() => next().catch(retryLater));
      return;
    }
    if (!body.trials.length) throw new Error("no pair to show");
    overlay("");
    state.trials = body.trials;
    if (body.trials[1]) { load(body.trials[1].left.src); load(body.trials[1].right.src); }
    await show(body.trials[0]);
  }
  function retryLater(error) {
    state.busy = true;
    delete root.dataset.ready;
    overlay(error.image ? IMAGE_PROBLEM : WAITING);
    setStatus(`${error.image ? "image problem" : "connection problem"} (${error.message}); retrying…`);
    sleep(2000).then(() => next().then(() => setStatus("")).catch(retryLater));
  }

  // ---- answering -------------------------------------------------------------------------
  async function send(item) {
    // Retries until acknowledged; the token makes each retry harmless. While it is not,
    // the page says so (and hides the pair) instead of silently waiting.
    for (let delay = 500; ; delay = Math.min(delay * 2, 8000)) {
      try {
        const url = root.dataset.answerUrl.replace("/0/", `/${item.trial}/`);
        const { status, body } = await request(url, { method: "POST", body: JSON.stringify(item.answer) });
        if (status === 200 || status === 409 || status === 404) {
          localStorage.removeItem(outboxKey);
          if (status !== 200) setStatus(body.error || "");
          return body;
        }
        if (status === 400) { localStorage.removeItem(outboxKey); setStatus(body.error); return body; }
        setStatus(`server error (HTTP ${status}); your answer is kept and will be resent`);
      } catch (error) { setStatus("offline: your answer is kept and will be sent"); }
      overlay(PENDING, true);
      await sleep(delay);
    }
  }
  async function answer(choice) {
    if (state.busy || !state.current) return;
    if (choice === "tie" && !tieAllowed) return;
    state.busy = true;
    delete root.dataset.ready;
    const item = { trial: state.current.id, answer: {
      token: token(), choice, rt_ms: Math.round(performance.now() - state.shownAt),
      zoom_count: state.zooms, flicker_count: state.flickers } };
    localStorage.setItem(outboxKey, JSON.stringify(item));
    setStatus("saving…");
    const slow = setTimeout(() => overlay(PENDING, true), 1500);  // a hanging connection
    const reply = await send(item);
    clearTimeout(slow);
    setStatus("");
    // An acknowledged answer brings the next trials; a refused one (400/404/409) does not.
    const ready = reply && reply.progress && reply.trials;
    await (ready ? present(reply) : next()).catch(retryLater);
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    // Enter is no answer key: without this, a button clicked last keeps the focus and Enter
    // (or Space) would press it again on the next pair.
    if (e.key === "Enter" && e.target.closest("#trial")) { e.preventDefault(); return; }
    const actions = {
      ArrowLeft: () => answer("left"), 1: () => answer("left"),
      ArrowRight: () => answer("right"), 2: () => answer("right"),
      ArrowDown: () => answer("tie"),
      " ": () => { if (!state.busy) flicker(); },
      "+": zoomIn, "=": zoomIn, "-": zoomOut,
      0: () => resetView(),
      p: () => resetView(Math.abs(state.scale - 1) < 1e-6 ? defaultScale() : 1),
      l: () => { state.locked = !state.locked; render(); },
    };
    const action = actions[e.key];
    if (action) { e.preventDefault(); if (!e.repeat) action(); }
  });
  for (const [id, choice] of [["choose-left", "left"], ["choose-right", "right"], ["choose-tie", "tie"]]) {
    const button = $(id);
    if (!button) continue;
    // A click must not leave the focus on the button (Enter or Space would answer again).
    button.addEventListener("mousedown", (e) => e.preventDefault());
    button.addEventListener("click", () => { button.blur(); answer(choice); });
  }
  window.addEventListener("resize", render);

  async function start() {
    const saved = localStorage.getItem(outboxKey);
    if (saved) {
      setStatus("sending the answer saved before the page closed…");
      await send(JSON.parse(saved));
      overlay("");
    }
    await next();
    setStatus("");
  }
  start().catch(retryLater);
})();
