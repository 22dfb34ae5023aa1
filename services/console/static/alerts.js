// Live alerts: server-sent events from /api/alerts/stream (no polling). Each alert shows the
// watchlist image and the live crop side by side; confirm / reject / no action call Adjudicate
// through the console. A crop leaves the page when its alert's retention ends (timer here, and an
// "expire" event from the console). Images are fetched with Cache-Control: no-store.
"use strict";
(function () {
  const main = document.getElementById("main");
  const list = document.getElementById("alerts");
  const none = document.getElementById("no-alerts");
  const live = document.getElementById("live-status");
  const announcer = document.getElementById("announcer");
  const csrf = main.dataset.csrf;
  const canAdjudicate = main.dataset.canAdjudicate === "1";
  const timers = new Map();
  const OUTCOMES = [["confirmed", "Confirm", ""], ["rejected", "Reject", "secondary"], ["no_action", "No action", "secondary"]];

  function el(tag, attrs, text) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else n.setAttribute(k, v);
    }
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—"; }
  function title(a) { return a.subject_id + (a.category && a.category !== "unspecified" ? " (" + a.category + ")" : ""); }
  function stateText(a) {
    if (a.state === "awaiting_second") return "Awaiting second confirmation (confirmed by " + a.confirmed_by.join(", ") + ")";
    if (a.state === "adjudicated") return "Adjudicated: " + a.outcome.replace("_", " ") + (a.confirmed_by.length ? " (confirmed by " + a.confirmed_by.join(", ") + ")" : "");
    if (a.state === "new") return "New" + (a.two_person ? " — needs two confirmations" : "");
    return a.state.charAt(0).toUpperCase() + a.state.slice(1).replace("_", " ") + (a.two_person ? " — needs two confirmations" : "");
  }

  function figure(a, which, caption, alt, has) {
    const f = el("figure");
    if (has) {
      f.appendChild(el("img", { src: "/api/alerts/" + encodeURIComponent(a.alert_id) + "/" + which + ".jpg", alt: alt, "data-image": which }));
    } else {
      f.appendChild(el("div", { class: "noimg" }, which === "crop" ? "No live crop available" : "No enrolled image available"));
    }
    f.appendChild(el("figcaption", {}, caption));
    return f;
  }

  function dropImages(card, why) {
    for (const f of card.querySelectorAll("figure")) {
      const img = f.querySelector("img");
      if (img) { img.remove(); f.prepend(el("div", { class: "noimg" }, why)); }
    }
  }

  function schedule(a) {
    clearTimeout(timers.get(a.alert_id));
    if (!a.retention_until_ms) return;
    const wait = Math.max(0, a.retention_until_ms - Date.now());
    timers.set(a.alert_id, setTimeout(() => remove(a.alert_id, "retention"), Math.min(wait, 2147483000)));
  }

  function render(a) {
    const id = "alert-" + a.alert_id.replace(/[^A-Za-z0-9_-]/g, "_");
    let card = document.getElementById(id);
    const fresh = !card;
    if (fresh) {
      card = el("article", { id: id, class: "alert", "data-alert-id": a.alert_id, "data-received-ms": String(Date.now()),
                             "data-alert-ms": String(a.alert_ms), "aria-labelledby": id + "-h" });
    }
    card.replaceChildren();
    card.classList.toggle("open", a.state !== "adjudicated");
    card.dataset.state = a.state;
    card.appendChild(el("h2", { id: id + "-h" }, "Alert: " + title(a)));
    const pair = el("div", { class: "pair" });
    pair.appendChild(figure(a, "watchlist", "Watchlist image", "Enrolled watchlist image of " + a.subject_id, a.has_watchlist_image));
    pair.appendChild(figure(a, "crop", "Live crop, camera " + a.camera_id, "Live crop of the face seen by camera " + a.camera_id, a.has_crop));
    card.appendChild(pair);
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of [["Score", a.score.toFixed(3) + " (threshold " + a.threshold.toFixed(3) + ")"], ["Camera", a.camera_id],
                          ["Zone", a.zone], ["Seen", when(a.capture_ms)], ["Raised", when(a.alert_ms)],
                          ["Deployment", a.deployment_id], ["Watchlist", a.watchlist_id], ["Matched frames", String(a.match_count)],
                          ["Images until", a.retention_until_ms ? when(a.retention_until_ms) : "kept (case)"]]) {
      dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v));
    }
    card.appendChild(dl);
    card.appendChild(el("p", { class: "status-line" + (a.state === "awaiting_second" ? " awaiting" : ""), "data-role": "state" }, stateText(a)));
    if (canAdjudicate && a.state !== "adjudicated") {
      const actions = el("div", { class: "actions", role: "group", "aria-label": "Decision on the alert for " + a.subject_id });
      for (const [outcome, label, cls] of OUTCOMES) {
        const b = el("button", { type: "button", class: cls, "data-outcome": outcome,
                                 "aria-label": label + " alert for " + a.subject_id + " on camera " + a.camera_id }, label);
        b.addEventListener("click", () => decide(a, outcome, card));
        actions.appendChild(b);
      }
      card.appendChild(actions);
    }
    card.appendChild(el("p", { class: "msg", role: "status" }));
    if (fresh) {
      list.prepend(card);
      announcer.textContent = "New alert: " + title(a) + " on camera " + a.camera_id + ", zone " + a.zone;
    }
    none.hidden = list.querySelectorAll("article.alert").length > 0;
    schedule(a);
  }

  function remove(alertId, reason) {
    clearTimeout(timers.get(alertId));
    timers.delete(alertId);
    const card = list.querySelector('article.alert[data-alert-id="' + CSS.escape(alertId) + '"]');
    if (!card) return;
    dropImages(card, reason === "retention" ? "Retention ended: image deleted" : "Image no longer available");
    card.remove();
    none.hidden = list.querySelectorAll("article.alert").length > 0;
  }

  async function decide(a, outcome, card) {
    const msg = card.querySelector(".msg");
    for (const b of card.querySelectorAll("button[data-outcome]")) b.disabled = true;
    msg.textContent = "Sending…";
    try {
      const r = await fetch("/api/alerts/" + encodeURIComponent(a.alert_id) + "/adjudicate", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify({ outcome: outcome }) });
      const body = await r.json().catch(() => ({ ok: false, error: "HTTP " + r.status }));
      if (!r.ok || !body.ok) throw new Error(body.error || ("HTTP " + r.status));
      if (body.alert) render(body.alert);
      const m = card.querySelector(".msg");
      if (m) m.textContent = "Recorded: " + outcome.replace("_", " ") + " (" + body.state.replace("ALERT_STATE_", "").toLowerCase().replace("_", " ") + ")";
    } catch (err) {
      msg.textContent = "Not recorded: " + err.message;
      for (const b of card.querySelectorAll("button[data-outcome]")) b.disabled = false;
    }
  }

  function connect() {
    const src = new EventSource("/api/alerts/stream");
    src.addEventListener("open", () => { live.textContent = "Live: connected to the console"; live.className = "live up"; });
    src.addEventListener("status", (ev) => {
      const up = JSON.parse(ev.data).connected;
      live.textContent = up ? "Live: receiving alerts" : "Alert stream unavailable, reconnecting…";
      live.className = "live " + (up ? "up" : "down");
    });
    src.addEventListener("alert", (ev) => render(JSON.parse(ev.data)));
    src.addEventListener("update", (ev) => render(JSON.parse(ev.data)));
    src.addEventListener("expire", (ev) => { const d = JSON.parse(ev.data); remove(d.alert_id, d.reason); });
    src.addEventListener("end", () => {  // the session ended (signed out, removed, role changed): no images stay
      src.close();
      for (const card of list.querySelectorAll("article.alert")) { dropImages(card, "Session ended"); card.remove(); }
      window.location.assign("/login");
    });
    src.addEventListener("error", () => { live.textContent = "Connection to the console lost, reconnecting…"; live.className = "live down"; });
  }
  connect();
})();
