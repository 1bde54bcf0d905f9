"use strict";
// The demo page: subscribe with the browser's own EventSource, show every event, publish.
//
// Event types. EventSource hands an event to the listeners of its type only, and has no
// wildcard: untyped events (no `event:` line) arrive as `message`; a typed one reaches the page
// only if it called addEventListener with that exact type. So the page always listens to
// `message` and `gap`, and to every type in its "Event types" field (also `?types=` in its
// URL); edits add and remove listeners on the open connection, without reconnecting. Publishing
// a new type from the form adds it before the event is sent. `open` and `error` are never
// listened to as event types: the EventSource uses those names for its own connection events.
//
// Reconnecting. The browser reconnects by itself after a dropped stream (state "reconnecting")
// and sends the last id it saw as `Last-Event-ID`. It gives up for good when the gateway
// answers with an error status (503 while it shuts down, 400 for a bad channel name); then the
// page asks the same URL once with fetch to show the gateway's JSON error, and for a status that
// may pass (5xx) opens a new EventSource itself, after a growing, randomized delay, resuming
// with `lastEventId=` in the query since a new EventSource has no id of its own to send.
(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"), detail: $("state-detail"), lastId: $("last-id"),
    subscribe: $("subscribe-form"), channels: $("channels"), types: $("types"),
    replay: $("replay"), disconnect: $("disconnect"), share: $("share"),
    count: $("count"), clear: $("clear"), empty: $("empty"), events: $("events"),
    gap: $("gap"), gapText: $("gap-text"), gapDismiss: $("gap-dismiss"),
    publish: $("publish-form"), pubChannel: $("pub-channel"), subscribed: $("subscribed"),
    pubEvent: $("pub-event"), pubId: $("pub-id"), pubData: $("pub-data"), pubKey: $("pub-key"),
    pubButton: $("publish"), pubResult: $("publish-result"),
  };
  const STATE_LABELS = {
    idle: "not connected", connecting: "connecting", open: "open",
    reconnecting: "reconnecting", closed: "closed",
  };
  const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
  const NOT_TYPES = new Set(["message", "gap", "open", "error"]);
  const MAX_SHOWN = 500;
  const REOPEN_MIN_MS = 1000;
  const REOPEN_MAX_MS = 15000;

  let source = null; // the current EventSource
  let subscription = null; // { channels, label } of the current connection
  let listened = new Set(); // event types with a listener on `source`
  let lastEventId = "";
  let reopenTimer = 0;
  let reopenDelay = REOPEN_MIN_MS;
  let received = 0;

  const splitList = (text) =>
    [...new Set(text.split(/[\s,]+/).filter(Boolean))];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setState(state, detail = "") {
    ui.state.dataset.state = state;
    ui.state.textContent = STATE_LABELS[state];
    ui.detail.textContent = detail;
  }

  function wantedTypes() {
    return new Set(splitList(ui.types.value).filter((t) => !NOT_TYPES.has(t)));
  }

  /** Connect opens one EventSource for every chosen channel, closing the previous one. */
  function connect(resumeFrom = "") {
    const channels = splitList(ui.channels.value);
    const bad = channels.find((name) => !CHANNEL_NAME.test(name));
    if (channels.length === 0 || bad !== undefined) {
      setState("closed", bad === undefined ? "pick a channel"
        : `"${bad}" is not a channel name (1 to 128 of A-Z a-z 0-9 _ . : -)`);
      return;
    }
    close();
    subscription = { channels, label: channels.join(", ") };
    const params = new URLSearchParams({ channel: channels.join(",") });
    const from = resumeFrom || (ui.replay.checked ? "earliest" : "");
    if (from) params.set("lastEventId", from);
    const es = new EventSource(`events?${params}`);
    source = es;
    listened = new Set();
    es.addEventListener("open", () => {
      reopenDelay = REOPEN_MIN_MS;
      setState("open");
    });
    es.addEventListener("error", () => {
      if (es !== source) return;
      if (es.readyState === EventSource.CONNECTING) setState("reconnecting");
      else refused(es.url);
    });
    es.addEventListener("message", onEvent);
    es.addEventListener("gap", onGap);
    syncTypes();
    setState("connecting");
    ui.disconnect.disabled = false;
    ui.subscribed.replaceChildren(...channels.map((name) => new Option(name)));
    if (!channels.includes(ui.pubChannel.value.trim())) ui.pubChannel.value = channels[0];
    updateLocation();
  }

  function close() {
    clearTimeout(reopenTimer);
    if (source) source.close();
    source = null;
    ui.disconnect.disabled = true;
  }

  /** SyncTypes makes the listeners of `source` match the "Event types" field. */
  function syncTypes() {
    const wanted = wantedTypes();
    if (source) {
      for (const t of listened) if (!wanted.has(t)) source.removeEventListener(t, onEvent);
      for (const t of wanted) if (!listened.has(t)) source.addEventListener(t, onEvent);
    }
    listened = wanted;
  }

  /** Refused explains why the browser gave up on `url` and, when it may pass, reopens. */
  async function refused(url) {
    source = null;
    const mine = subscription;
    let status = 0;
    let reason = "the gateway cannot be reached";
    const probe = new AbortController();
    try {
      const res = await fetch(url, { signal: probe.signal, cache: "no-store" });
      status = res.status;
      if (res.ok) {
        probe.abort();
        reason = "the stream was refused";
      } else {
        const body = await res.json().catch(() => null);
        reason = `${res.status} ${body && body.error ? body.error : res.statusText}`;
      }
    } catch (err) {
      if (err.name !== "AbortError") reason = `not reachable (${err.message})`;
    }
    if (subscription !== mine) return; // the person connected again, or disconnected, meanwhile
    if (status >= 400 && status < 500) {
      setState("closed", reason);
      ui.disconnect.disabled = true;
      return;
    }
    const wait = Math.round(reopenDelay * (0.5 + Math.random() / 2));
    reopenDelay = Math.min(reopenDelay * 2, REOPEN_MAX_MS);
    setState("reconnecting", `${reason}; again in ${(wait / 1000).toFixed(1)} s`);
    reopenTimer = setTimeout(() => connect(lastEventId), wait);
  }

  function onEvent(e) {
    lastEventId = e.lastEventId;
    ui.lastId.textContent = lastEventId || "none";
    show(e.type, e.lastEventId, e.data);
  }

  /** OnGap shows the notice: the id we resumed from is gone, so events may have been missed. */
  function onGap(e) {
    let info = {};
    try {
      info = JSON.parse(e.data) || {};
    } catch {
      // Shown as it came, below.
    }
    const code = (text) => el("code", "", text);
    ui.gapText.replaceChildren(
      "The gateway no longer retains event ", code(String(info.lastEventId ?? "?")),
      ", the last one this page had seen, so it could not resume right after it. ",
      info.oldestId
        ? el("span", "", "It sent every event it still retains, from ")
        : "It retains no earlier events of these channels; live events follow.",
    );
    if (info.oldestId) ui.gapText.append(code(String(info.oldestId)), ", then live ones.");
    ui.gap.hidden = false;
    show("gap", "", e.data);
  }

  function show(type, id, data) {
    const kind = type === "message" || type === "gap" ? type : "typed";
    const item = el("li", `event is-${kind} fresh`);
    item.dataset.id = id;
    item.dataset.type = type;
    const meta = el("div", "meta");
    meta.append(
      el("time", "", clock(new Date())),
      el("span", "type", type),
      el("span", "channel", subscription ? subscription.label : ""),
      el("code", "id", id || "none"),
    );
    const pre = el("pre", "data");
    fillData(pre, data);
    item.append(meta, pre);
    ui.events.prepend(item);
    while (ui.events.children.length > MAX_SHOWN) ui.events.lastElementChild.remove();
    received += 1;
    ui.count.textContent = String(received);
    ui.empty.hidden = true;
  }

  function clock(date) {
    const two = (n) => String(n).padStart(2, "0");
    return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}` +
      `.${String(date.getMilliseconds()).padStart(3, "0")}`;
  }

  /** FillData shows JSON objects and arrays pretty-printed and coloured, other data as it is. */
  function fillData(pre, data) {
    const text = data.trim();
    if (text.startsWith("{") || text.startsWith("[")) {
      try {
        highlight(pre, JSON.stringify(JSON.parse(text), null, 2));
        return;
      } catch {
        // Not JSON after all: shown as text.
      }
    }
    pre.textContent = data;
  }

  function highlight(pre, json) {
    const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    let at = 0;
    for (const m of json.matchAll(token)) {
      pre.append(json.slice(at, m.index));
      const kind = m[1] ? (m[2] ? "k" : "s") : m[3] ? "l" : "n";
      pre.append(el("span", kind, m[1] ?? m[0]));
      if (m[2]) pre.append(m[2]);
      at = m.index + m[0].length;
    }
    pre.append(json.slice(at));
  }

  /** UpdateLocation puts the subscription in the page's URL, so that a link reopens it. */
  function updateLocation() {
    const params = new URLSearchParams();
    const channels = subscription ? subscription.channels : splitList(ui.channels.value);
    if (channels.length) params.set("channel", channels.join(","));
    const types = [...wantedTypes()];
    if (types.length) params.set("types", types.join(","));
    if (ui.replay.checked) params.set("replay", "1");
    const query = params.toString().replaceAll("%2C", ",");
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
    ui.share.href = location.href;
  }

  /** Publish posts the form to /publish as JSON and shows the gateway's answer. */
  async function publish(e) {
    e.preventDefault();
    const raw = ui.pubData.value;
    let data = raw;
    if (/^\s*[[{]/.test(raw)) {
      try {
        data = JSON.parse(raw);
      } catch (err) {
        result("error", `Data starts like JSON but is not JSON: ${err.message}`);
        return;
      }
    }
    const body = { channel: ui.pubChannel.value.trim(), data };
    const type = ui.pubEvent.value.trim();
    const id = ui.pubId.value.trim();
    if (type) body.event = type;
    if (id) body.id = id;
    if (type && !NOT_TYPES.has(type) && !wantedTypes().has(type)) {
      // Listen before sending: the event may arrive before the answer does.
      ui.types.value = [...wantedTypes(), type].join(", ");
      syncTypes();
      updateLocation();
    }
    const headers = { "Content-Type": "application/json" };
    if (ui.pubKey.value) headers.Authorization = `Bearer ${ui.pubKey.value}`;
    ui.pubButton.disabled = true;
    result("", "Publishing…");
    try {
      const res = await fetch("publish", { method: "POST", headers, body: JSON.stringify(body) });
      const answer = await res.json().catch(() => null);
      if (res.ok && answer) {
        result("ok", `${res.status} accepted: id ${answer.id} on ${answer.channel}`);
        ui.pubId.value = "";
      } else {
        result("error", `${res.status} ${answer && answer.error ? answer.error : res.statusText}`);
      }
    } catch (err) {
      result("error", `Not sent: ${err.message}`);
    } finally {
      ui.pubButton.disabled = false;
    }
  }

  function result(kind, text) {
    ui.pubResult.className = `result ${kind}`;
    ui.pubResult.textContent = text;
  }

  ui.subscribe.addEventListener("submit", (e) => {
    e.preventDefault();
    lastEventId = "";
    connect();
  });
  ui.disconnect.addEventListener("click", () => {
    close();
    subscription = null;
    setState("idle");
  });
  ui.types.addEventListener("input", () => {
    syncTypes();
    updateLocation();
  });
  ui.replay.addEventListener("change", updateLocation);
  ui.publish.addEventListener("submit", publish);
  ui.gapDismiss.addEventListener("click", () => {
    ui.gap.hidden = true;
  });
  ui.clear.addEventListener("click", () => {
    ui.events.replaceChildren();
    received = 0;
    ui.count.textContent = "0";
    ui.empty.hidden = false;
  });

  const query = new URLSearchParams(location.search);
  const fromQuery = (name) => query.getAll(name).flatMap(splitList).join(", ");
  ui.channels.value = fromQuery("channel");
  ui.types.value = fromQuery("types");
  ui.replay.checked = query.get("replay") === "1";
  ui.share.href = location.href;
  if (ui.channels.value) connect();
  else ui.channels.focus();
})();
