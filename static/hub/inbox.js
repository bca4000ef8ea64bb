/*
 * The operator inbox in the browser: plain JavaScript, no build step.
 *
 * The server renders every piece of HTML (the page, list rows, the conversation pane, messages);
 * this script keeps one WebSocket to /ws/inbox/ open and, when an event arrives, fetches the
 * fragment that changed. Actions and replies go over the socket when it is up and fall back to
 * the same forms over HTTP when it is not, so nothing an operator does is lost to a reconnect.
 */
(function () {
  "use strict";

  var root = document.getElementById("inbox");
  if (!root) return;

  var home = root.dataset.homeUrl;
  var me = root.dataset.operator;
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  var canned = JSON.parse(document.getElementById("canned-responses").textContent || "[]");
  var TYPING_REFRESH_MS = 3000;
  var TYPING_IDLE_MS = 4000;
  var TYPING_SHOW_MS = 6000;

  var state = {
    socket: null,
    attempts: 0,
    everConnected: false,
    pingTimer: null,
    ref: 0,
    pending: {},
    open: null,
    lastSeq: 0,
    readSent: 0,
    rowTimers: {},
    paneTimer: null,
    fetchingNew: false,
    fetchAgain: false,
    typingSentAt: 0,
    typingIdle: null,
    typingHide: null,
    mode: "reply",
    cannedIndex: 0,
  };

  // ---- Small helpers ------------------------------------------------------------------------

  function $(selector, scope) { return (scope || document).querySelector(selector); }
  function $all(selector, scope) { return Array.prototype.slice.call((scope || document).querySelectorAll(selector)); }

  function query() { return root.dataset.query; }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(answer);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf },
    }).then(answer);
  }

  function answer(response) {
    if (response.status === 401) { location.reload(); throw new Error("Signed out"); }
    var type = response.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") === -1) {
      return response.text().then(function (html) { if (!response.ok) throw new Error("HTTP " + response.status); return html; });
    }
    return response.json().then(function (body) {
      if (!response.ok) throw new Error((body.error && body.error.message) || "HTTP " + response.status);
      return body;
    });
  }

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function toast(title, text, kind, onClick) {
    var box = $("[data-toasts]");
    var item = document.createElement("div");
    item.className = "toast" + (kind ? " toast--" + kind : "");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    var body = document.createElement("div");
    var strong = document.createElement("strong");
    strong.textContent = title;
    body.appendChild(strong);
    if (text) { var span = document.createElement("span"); span.textContent = text; body.appendChild(span); }
    item.appendChild(body);
    item.addEventListener("click", function () { item.remove(); if (onClick) onClick(); });
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  // ---- Times in the browser's own zone ------------------------------------------------------

  var weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
  var clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var shortDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  var longDay = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });

  function sameDay(a, b) { return a.toDateString() === b.toDateString(); }

  function relative(date) {
    var now = new Date();
    var seconds = (now - date) / 1000;
    if (seconds < 45) return "now";
    if (seconds < 3600) return Math.round(seconds / 60) + "m";
    if (sameDay(date, now)) return clock.format(date);
    if (seconds < 6 * 86400) return weekday.format(date);
    return shortDate.format(date);
  }

  function dayLabel(date) {
    var now = new Date();
    var yesterday = new Date(now.getTime() - 86400000);
    if (sameDay(date, now)) return "Today";
    if (sameDay(date, yesterday)) return "Yesterday";
    return longDay.format(date);
  }

  function renderTimes(scope) {
    $all("time[data-relative]", scope).forEach(function (el) { el.textContent = relative(new Date(el.getAttribute("datetime"))); });
    $all("time[data-clock]", scope).forEach(function (el) { el.textContent = clock.format(new Date(el.getAttribute("datetime"))); });
    $all("time[data-day-label]", scope).forEach(function (el) { el.textContent = dayLabel(new Date(el.getAttribute("datetime"))); });
  }

  // ---- The socket ---------------------------------------------------------------------------

  function setConnection(kind, label) {
    var el = $("[data-connection]");
    el.classList.toggle("is-live", kind === "live");
    el.classList.toggle("is-down", kind === "down");
    el.textContent = label;
  }

  function socketUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.socketPath;
  }

  function connect() {
    setConnection("connecting", "Connecting…");
    var socket = new WebSocket(socketUrl());
    state.socket = socket;
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (error) { return; }
      handle(frame);
    });
    socket.addEventListener("close", function (event) {
      if (state.socket === socket) state.socket = null;
      clearInterval(state.pingTimer);
      Object.keys(state.pending).forEach(function (ref) { state.pending[ref].reject(new Error("Connection lost")); });
      state.pending = {};
      if (event.code === 4401) { setConnection("down", "Signed out"); location.reload(); return; }
      if (event.code === 4403) { setConnection("down", "Not allowed"); return; }
      setConnection("down", "Reconnecting…");
      var delay = Math.min(30000, 500 * Math.pow(2, state.attempts++)) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    });
  }

  function live() { return state.socket && state.socket.readyState === WebSocket.OPEN; }

  function send(frame) {
    if (live()) state.socket.send(JSON.stringify(frame));
  }

  // A frame the server acknowledges (ack or error with the same ref).
  function request(frame) {
    return new Promise(function (resolve, reject) {
      var ref = String(++state.ref);
      frame.ref = ref;
      state.pending[ref] = { resolve: resolve, reject: reject };
      send(frame);
      setTimeout(function () {
        if (state.pending[ref]) { delete state.pending[ref]; reject(new Error("No answer from the server")); }
      }, 15000);
    });
  }

  // Over the socket when it is up, else the form's own POST: the same service either way.
  function act(frame, url, formData) {
    if (live()) return request(frame);
    return post(url, formData);
  }

  function handle(frame) {
    switch (frame.type) {
      case "ready":
        var reconnected = state.everConnected;
        state.everConnected = true;
        state.attempts = 0;
        setConnection("live", "Live");
        clearInterval(state.pingTimer);
        state.pingTimer = setInterval(function () { send({ type: "ping" }); }, 15000);
        if (state.open) subscribe(state.open);
        if (reconnected) resync();
        break;
      case "event": onEvent(frame.event, frame.payload); break;
      case "typing": onTyping(frame); break;
      case "read": onRead(frame); break;
      case "presence": onPresence(frame); break;
      case "ack":
        if (state.pending[frame.ref]) { state.pending[frame.ref].resolve(frame); delete state.pending[frame.ref]; }
        break;
      case "error":
        if (frame.ref && state.pending[frame.ref]) {
          state.pending[frame.ref].reject(new Error(frame.message));
          delete state.pending[frame.ref];
        }
        break;
    }
  }

  // What happened while the socket was down comes from the database.
  function resync() {
    refreshList();
    if (state.open) { fetchNew(); refreshPane(); }
  }

  // ---- Live events --------------------------------------------------------------------------

  function onEvent(name, payload) {
    if (name === "conversation.created" || name === "conversation.updated") {
      scheduleRow(payload.id);
      if (payload.id === state.open) scheduleRefreshPane();
    } else if (name === "message.created") {
      scheduleRow(payload.conversation);
      if (payload.conversation === state.open) fetchNew();
    } else if (name === "message.updated") {
      scheduleRow(payload.conversation);
      if (payload.conversation === state.open) updateMessage(payload);
    } else if (name === "notification.created") {
      addNotification(payload);
    } else if (name === "operator.updated") {
      $all('[data-operator-presence="' + payload.id + '"]').forEach(function (dot) {
        dot.className = "presence presence--" + payload.availability;
      });
    }
  }

  // ---- The list -------------------------------------------------------------------------------

  function scheduleRow(id) {
    if (!id) return;
    clearTimeout(state.rowTimers[id]);
    state.rowTimers[id] = setTimeout(function () { delete state.rowTimers[id]; refreshRow(id); }, 120);
  }

  function refreshRow(id) {
    var url = home + "c/" + id + "/row/?" + query() + "&selected=" + (state.open || "");
    getJSON(url).then(function (body) {
      updateCounts(body.counts);
      var existing = $('[data-row="' + id + '"]');
      if (!body.row) { if (existing) existing.remove(); updateEmpty(); return; }
      var row = fragment(body.row).firstElementChild;
      if (existing && existing.dataset.activity === row.dataset.activity) {
        existing.replaceWith(row);
      } else {
        if (existing) existing.remove();
        insertByActivity(row);
        if (id !== state.open) row.classList.add("is-new");
      }
      renderTimes(row);
      updateEmpty();
    }).catch(function () { /* the next event or a resync brings it */ });
  }

  function insertByActivity(row) {
    var list = $("#rows");
    var after = $all(".row", list).find(function (other) { return other.dataset.activity < row.dataset.activity; });
    if (after) list.insertBefore(row, after); else if (!$("[data-load-more]")) list.appendChild(row);
  }

  function refreshList() {
    getJSON(root.dataset.listUrl + "?" + query()).then(function (body) {
      var list = $("#rows");
      list.innerHTML = "";
      list.appendChild(fragment(body.html));
      if (state.open) { var row = $('[data-row="' + state.open + '"]'); if (row) row.classList.add("is-selected"); }
      renderTimes(list);
      updateEmpty();
    }).catch(function () {});
  }

  function updateCounts(counts) {
    Object.keys(counts || {}).forEach(function (key) {
      $all('[data-count="' + key + '"]').forEach(function (el) { el.textContent = counts[key]; });
    });
  }

  function updateEmpty() {
    $("[data-list-empty]").hidden = $all(".row").length > 0;
    var unread = $all(".row.is-unread").length;
    document.title = (unread ? "(" + unread + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }

  // ---- The conversation pane --------------------------------------------------------------------

  // Joins the conversation's live group (typing, read receipts, presence); the pane says so
  // once the server has confirmed.
  function subscribe(id) {
    if (!live()) return;
    request({ type: "open", conversation: id }).then(function () {
      var current = pane();
      if (current && state.open === id) current.dataset.subscribed = "true";
    }, function () {});
  }

  function pane() { return $(".conversation"); }

  function openConversation(id, push) {
    return getJSON(home + "c/" + id + "/pane/").then(function (html) {
      if (state.open && state.open !== id) send({ type: "close", conversation: state.open });
      $("#pane").innerHTML = html;
      state.open = id;
      state.readSent = 0;
      state.lastSeq = parseInt(pane().dataset.lastSeq, 10) || 0;
      root.classList.add("has-conversation");
      $all(".row.is-selected").forEach(function (row) { row.classList.remove("is-selected"); });
      var row = $('[data-row="' + id + '"]');
      if (row) row.classList.add("is-selected");
      if (push) history.pushState({ conversation: id }, "", home + "c/" + id + "/?" + query());
      subscribe(id);
      setMode("reply");
      renderTimes($("#pane"));
      scrollToEnd(true);
      markRead();
      var text = $("[data-composer-text]");
      if (text && window.matchMedia("(min-width: 721px)").matches) text.focus({ preventScroll: true });
    }).catch(function (error) { toast("Could not open the conversation", error.message, "error"); });
  }

  function closeConversation(push) {
    if (state.open) send({ type: "close", conversation: state.open });
    state.open = null;
    root.classList.remove("has-conversation");
    $all(".row.is-selected").forEach(function (row) { row.classList.remove("is-selected"); });
    if (push) history.pushState({}, "", home + "?" + query());
  }

  function scheduleRefreshPane() {
    clearTimeout(state.paneTimer);
    state.paneTimer = setTimeout(refreshPane, 80);
  }

  // Header, banner and details change with the conversation; the thread and composer stay.
  function refreshPane() {
    var current = pane();
    if (!current) return;
    var id = state.open;
    getJSON(current.dataset.paneUrl).then(function (html) {
      if (state.open !== id) return;
      var fresh = fragment(html);
      $all("[data-swap]", fresh).forEach(function (part) {
        var old = $('[data-swap="' + part.dataset.swap + '"]', pane());
        if (old) old.replaceWith(part);
      });
      renderTimes(pane());
    }).catch(function () {});
  }

  function thread() { return $("[data-thread]"); }

  function nearEnd() {
    var el = thread();
    return el && el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }

  function scrollToEnd(force) {
    var el = thread();
    if (el && (force || nearEnd())) el.scrollTop = el.scrollHeight;
  }

  function lastDay() {
    var days = $all("[data-messages] [data-day]");
    return days.length ? days[days.length - 1].dataset.day : null;
  }

  // New messages after the last one shown; one request at a time, repeated if more arrived.
  function fetchNew() {
    var current = pane();
    if (!current) return;
    if (state.fetchingNew) { state.fetchAgain = true; return; }
    state.fetchingNew = true;
    var id = state.open;
    var stick = nearEnd();
    getJSON(current.dataset.messagesUrl + "?after_seq=" + state.lastSeq).then(function (body) {
      if (state.open !== id || !body.last_seq) return;
      var list = $("[data-messages]");
      var mine = false;
      Array.prototype.slice.call(fragment(body.html).children).forEach(function (node) {
        if (node.classList.contains("day")) {
          if (node.dataset.day !== lastDay()) list.appendChild(node);
          return;
        }
        var existing = document.getElementById(node.id);
        var optimistic = node.dataset.clientId && $('[data-client-id="' + node.dataset.clientId + '"].is-sending', list);
        if (node.classList.contains("msg--operator")) mine = true;
        if (existing) existing.replaceWith(node);
        else if (optimistic) optimistic.replaceWith(node);
        else list.appendChild(node);
      });
      state.lastSeq = Math.max(state.lastSeq, body.last_seq);
      renderTimes(list);
      hideTyping();
      scrollToEnd(stick || mine);
      markRead();
    }).catch(function () {}).then(function () {
      state.fetchingNew = false;
      if (state.fetchAgain) { state.fetchAgain = false; fetchNew(); }
    });
  }

  function loadOlder(button) {
    var current = pane();
    var first = $("[data-messages] [data-seq]");
    if (!current || !first) return;
    button.disabled = true;
    getJSON(current.dataset.messagesUrl + "?before_seq=" + first.dataset.seq).then(function (body) {
      var list = $("[data-messages]");
      var el = thread();
      var fromEnd = el.scrollHeight - el.scrollTop;
      var older = fragment(body.html);
      var lastOld = older.lastElementChild;
      var firstDay = list.querySelector(".day");
      if (lastOld && firstDay && lastOld.dataset.day === firstDay.dataset.day) firstDay.remove();
      list.insertBefore(older, list.firstChild);
      renderTimes(list);
      el.scrollTop = el.scrollHeight - fromEnd;
      button.hidden = !body.has_older;
    }).catch(function (error) { toast("Could not load older messages", error.message, "error"); })
      .then(function () { button.disabled = false; });
  }

  function updateMessage(payload) {
    var el = document.getElementById("m-" + payload.id);
    if (!el) return;
    if (payload.deleted_at) {
      el.classList.add("msg--deleted");
      var bubble = $(".msg-bubble", el);
      bubble.innerHTML = "";
      var em = document.createElement("em");
      em.className = "muted";
      em.textContent = "This message was deleted.";
      bubble.appendChild(em);
    }
    var tick = $("[data-tick]", el);
    if (tick && !tick.classList.contains("tick--read")) {
      tick.className = "tick tick--" + payload.status;
      tick.title = payload.status === "failed" ? "Not delivered" : payload.status;
    }
    if (payload.status === "failed" && !$(".msg-error", el)) {
      var error = document.createElement("div");
      error.className = "msg-error";
      error.textContent = "Not delivered" + (payload.error && payload.error.message ? ": " + payload.error.message : "");
      el.appendChild(error);
    }
  }

  function markRead() {
    if (!state.open || state.lastSeq <= state.readSent) return;
    if (document.visibilityState !== "visible" || !document.hasFocus()) return;
    state.readSent = state.lastSeq;
    var id = state.open;
    if (live()) request({ type: "read", conversation: id, seq: state.lastSeq }).then(function () { scheduleRow(id); }, function () { state.readSent = 0; });
  }

  // ---- Typing, read receipts and presence from the other side -------------------------------------

  function onTyping(frame) {
    if (frame.conversation !== state.open) return;
    if (frame.state === "stop") { hideTyping(); return; }
    var box = $("[data-typing]");
    if (!box) return;
    var name = frame.who === "visitor" ? pane().dataset.contactName : frame.who === "ai" ? "The AI agent" : frame.name || "Someone";
    $("[data-typing-label]").textContent = name + " is typing…";
    var stick = nearEnd();
    box.hidden = false;
    scrollToEnd(stick);
    clearTimeout(state.typingHide);
    state.typingHide = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    var box = $("[data-typing]");
    if (box) box.hidden = true;
  }

  function onRead(frame) {
    if (frame.conversation !== state.open || frame.who !== "visitor") return;
    $all("[data-messages] .msg--out").forEach(function (el) {
      var tick = $("[data-tick]", el);
      if (tick && parseInt(el.dataset.seq, 10) <= frame.seq && !tick.classList.contains("tick--failed")) {
        tick.className = "tick tick--read";
        tick.title = "Seen";
      }
    });
  }

  function onPresence(frame) {
    if (frame.conversation !== state.open || frame.who !== "visitor") return;
    var online = frame.status === "online";
    var dot = $("[data-visitor-presence]");
    var label = $("[data-visitor-presence-label]");
    if (dot) dot.className = "presence presence--" + (online ? "online" : "offline");
    if (label) label.textContent = online ? "Online now" : "Offline";
    if (!online) hideTyping();
  }

  // ---- The composer ---------------------------------------------------------------------------------

  function setMode(mode) {
    state.mode = mode;
    var composer = $("[data-composer]");
    if (!composer) return;
    composer.classList.toggle("is-note", mode === "note");
    $("[data-private]", composer).value = mode === "note" ? "1" : "";
    $all("[data-mode]", composer).forEach(function (tab) {
      var active = tab.dataset.mode === mode;
      tab.classList.toggle("is-active", active);
      tab.setAttribute("aria-selected", active ? "true" : "false");
    });
    $("[data-send-label]", composer).textContent = mode === "note" ? "Add note" : "Send";
    var text = $("[data-composer-text]", composer);
    text.placeholder = mode === "note"
      ? "Write a note for your team — the customer never sees it"
      : "Reply to " + pane().dataset.contactName + "…  Type / for canned responses";
    if (mode === "note") typingStop();
  }

  function typingInput(text) {
    if (state.mode !== "reply" || !state.open) return;
    if (!text.value.trim()) { typingStop(); return; }
    var now = Date.now();
    if (now - state.typingSentAt > TYPING_REFRESH_MS) {
      state.typingSentAt = now;
      send({ type: "typing", conversation: state.open, state: "start" });
    }
    clearTimeout(state.typingIdle);
    state.typingIdle = setTimeout(typingStop, TYPING_IDLE_MS);
  }

  function typingStop() {
    clearTimeout(state.typingIdle);
    if (state.typingSentAt && state.open) send({ type: "typing", conversation: state.open, state: "stop" });
    state.typingSentAt = 0;
  }

  function autosize(text) {
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight, 240) + "px";
  }

  function clientId() {
    var random = window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now();
    return "inbox-" + random;
  }

  function optimisticBubble(text, id, isNote) {
    var article = document.createElement("article");
    article.className = "msg msg--out msg--operator is-sending" + (isNote ? " msg--note" : "");
    article.dataset.clientId = id;
    var bubble = document.createElement("div");
    bubble.className = "msg-bubble";
    var body = document.createElement("div");
    body.className = "msg-text";
    body.textContent = text;
    bubble.appendChild(body);
    var meta = document.createElement("div");
    meta.className = "msg-meta";
    meta.textContent = "Sending…";
    article.appendChild(bubble);
    article.appendChild(meta);
    return article;
  }

  function submitComposer(form) {
    var text = $("[data-composer-text]", form);
    var value = expandExact(text.value).trim();
    if (!value || !state.open) return;
    var id = clientId();
    var isNote = state.mode === "note";
    $("[data-client-id]", form).value = id;
    var data = new FormData(form);
    data.set("text", value);
    var bubble = optimisticBubble(value, id, isNote);
    $("[data-messages]").appendChild(bubble);
    text.value = "";
    autosize(text);
    closeCanned();
    typingStop();
    scrollToEnd(true);
    var frame = { type: "reply", conversation: state.open, text: value, client_id: id, private: isNote };
    act(frame, form.action, data).then(function () {
      fetchNew();
    }, function (error) {
      bubble.remove();
      if (!text.value) text.value = value;
      autosize(text);
      toast("Message not sent", error.message, "error");
    });
  }

  // ---- Canned responses: "/" then a shortcut -------------------------------------------------------

  function cannedToken(text) {
    var before = text.value.slice(0, text.selectionStart);
    var match = /(^|\s)\/([\w-]*)$/.exec(before);
    return match ? match[2].toLowerCase() : null;
  }

  function cannedMatches(token) {
    return canned.filter(function (item) { return item.shortcut.indexOf(token) === 0; })
      .concat(canned.filter(function (item) { return item.shortcut.indexOf(token) > 0; }))
      .slice(0, 8);
  }

  function showCanned(text) {
    var menu = $("[data-canned-menu]");
    var token = cannedToken(text);
    if (token === null) { closeCanned(); return; }
    var matches = cannedMatches(token);
    menu.innerHTML = "";
    if (!matches.length) {
      var empty = document.createElement("li");
      empty.className = "canned-empty";
      empty.textContent = canned.length ? "No canned response starts with /" + token : "No canned responses yet: add them under Canned responses.";
      menu.appendChild(empty);
    }
    state.cannedIndex = Math.min(state.cannedIndex, Math.max(matches.length - 1, 0));
    matches.forEach(function (item, index) {
      var li = document.createElement("li");
      li.className = "canned-item";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", index === state.cannedIndex ? "true" : "false");
      li.dataset.shortcut = item.shortcut;
      var strong = document.createElement("strong");
      strong.textContent = "/" + item.shortcut;
      var span = document.createElement("span");
      span.textContent = item.text;
      li.appendChild(strong);
      li.appendChild(span);
      menu.appendChild(li);
    });
    menu.hidden = false;
  }

  function closeCanned() {
    var menu = $("[data-canned-menu]");
    if (menu) menu.hidden = true;
    state.cannedIndex = 0;
  }

  function cannedOpen() {
    var menu = $("[data-canned-menu]");
    return menu && !menu.hidden && $(".canned-item", menu);
  }

  function applyCanned(text, shortcut) {
    var item = canned.find(function (entry) { return entry.shortcut === shortcut; });
    if (!item) return;
    var caret = text.selectionStart;
    var before = text.value.slice(0, caret).replace(/\/[\w-]*$/, "");
    var filled = fill(item.text);
    text.value = before + filled + text.value.slice(caret);
    var position = before.length + filled.length;
    text.setSelectionRange(position, position);
    closeCanned();
    autosize(text);
    text.focus();
  }

  // A message that is exactly "/shortcut" is sent as that canned response.
  function expandExact(value) {
    var match = /^\/([\w-]+)\s*$/.exec(value.trim());
    if (!match) return value;
    var item = canned.find(function (entry) { return entry.shortcut === match[1].toLowerCase(); });
    return item ? fill(item.text) : value;
  }

  function fill(text) {
    var contact = (pane() && pane().dataset.contactFirstName) || "there";
    return text.replace(/\{\{\s*contact\.name\s*\}\}/g, contact)
      .replace(/\{\{\s*agent\.name\s*\}\}/g, root.dataset.operatorName);
  }

  // ---- Notifications --------------------------------------------------------------------------------

  function bumpBadge(delta) {
    var badge = $("[data-bell-badge]");
    var count = Math.max(0, (parseInt(badge.textContent, 10) || 0) + delta);
    badge.textContent = count;
    badge.hidden = count === 0;
  }

  var NOTIFICATION_ICONS = { handoff: "hand", low_credits: "coins", dead_letter: "alert" };

  function addNotification(payload) {
    // Pushes are at least once (a resumed socket may be sent one again): count each once.
    if ($('[data-notification="' + payload.id + '"]')) return;
    var list = $("[data-notification-list]");
    var li = document.createElement("li");
    li.className = "notification is-unread notification--" + payload.kind;
    li.dataset.notification = payload.id;
    var form = document.createElement("form");
    form.method = "post";
    form.action = home + "notifications/" + payload.id + "/read/";
    form.setAttribute("data-notification-read", "");
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "notification-button";
    if (payload.conversation) button.dataset.conversation = payload.conversation;
    var icon = document.createElement("span");
    icon.className = "notification-icon";
    icon.innerHTML = '<svg class="icon"><use href="#i-' + (NOTIFICATION_ICONS[payload.kind] || "bell") + '"/></svg>';
    var text = document.createElement("span");
    text.className = "notification-text";
    var strong = document.createElement("strong");
    strong.textContent = payload.title;
    text.appendChild(strong);
    if (payload.body) { var body = document.createElement("span"); body.textContent = payload.body; text.appendChild(body); }
    var time = document.createElement("time");
    time.setAttribute("datetime", payload.created_at);
    time.setAttribute("data-relative", "");
    text.appendChild(time);
    button.appendChild(icon);
    button.appendChild(text);
    form.appendChild(button);
    li.appendChild(form);
    list.insertBefore(li, list.firstChild);
    $("[data-notification-empty]").hidden = true;
    renderTimes(li);
    bumpBadge(1);
    // Clicking the toast is clicking the notification: read, and its conversation opens.
    toast(payload.title, payload.body, "", function () { form.requestSubmit(); });
  }

  function toggleNotifications(force) {
    var panel = $("[data-notifications]");
    var bell = $("[data-bell]");
    var show = force === undefined ? panel.hidden : force;
    panel.hidden = !show;
    bell.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) {
      var rect = bell.getBoundingClientRect();
      if (window.innerWidth > 720) panel.style.left = Math.min(rect.left - 20, window.innerWidth - 400) + "px";
      renderTimes(panel);
    }
  }

  // ---- Wiring (delegated, so swapped-in fragments need no rebinding) ---------------------------------

  document.addEventListener("click", function (event) {
    var target = event.target;
    var opener = target.closest("[data-open]");
    if (opener && !event.metaKey && !event.ctrlKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      openConversation(opener.dataset.open, true);
      return;
    }
    if (target.closest("[data-back]")) { event.preventDefault(); closeConversation(true); return; }
    var older = target.closest("[data-load-older]");
    if (older) { loadOlder(older); return; }
    var more = target.closest("[data-load-more]");
    if (more) {
      more.disabled = true;
      getJSON(root.dataset.listUrl + "?" + query() + "&before=" + encodeURIComponent(more.dataset.loadMore)).then(function (body) {
        var list = $("#rows");
        list.appendChild(fragment(body.html));
        renderTimes(list);
        if (body.next_before) { more.dataset.loadMore = body.next_before; more.disabled = false; } else more.remove();
      }).catch(function () { more.disabled = false; });
      return;
    }
    var tab = target.closest("[data-mode]");
    if (tab) { setMode(tab.dataset.mode); $("[data-composer-text]").focus(); return; }
    var option = target.closest(".canned-item");
    if (option) { applyCanned($("[data-composer-text]"), option.dataset.shortcut); return; }
    if (target.closest("[data-bell]")) { toggleNotifications(); return; }
    if (!target.closest("[data-notifications]")) toggleNotifications(false);
    $all("details[data-menu][open]").forEach(function (menu) { if (!menu.contains(target)) menu.open = false; });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("[data-composer]")) {
      event.preventDefault();
      submitComposer(form);
    } else if (form.matches("[data-action-form]")) {
      event.preventDefault();
      var data = new FormData(form);
      if (event.submitter && event.submitter.name) data.set(event.submitter.name, event.submitter.value);
      var menu = form.closest("details");
      if (menu) menu.open = false;
      var buttons = $all("button", form);
      buttons.forEach(function (button) { button.disabled = true; });
      var frame = {
        type: "action",
        conversation: state.open,
        action: data.get("action"),
        operator: data.get("operator") || null,
        until: data.get("until") || "",
      };
      act(frame, form.action, data).then(function () {
        refreshPane();
        if (frame.action === "take_over") $("[data-composer-text]").focus();
      }, function (error) {
        toast("That did not work", error.message, "error");
        buttons.forEach(function (button) { button.disabled = false; });
      });
    } else if (form.matches("[data-notification-read]")) {
      event.preventDefault();
      var item = form.closest("[data-notification]");
      var button = $("button", form);
      if (item.classList.contains("is-unread")) {
        item.classList.remove("is-unread");
        bumpBadge(-1);
        post(form.action, new FormData(form)).catch(function () {});
      }
      toggleNotifications(false);
      if (button.dataset.conversation) openConversation(button.dataset.conversation, true);
    } else if (form.matches("[data-read-all]")) {
      event.preventDefault();
      post(form.action, new FormData(form)).then(function () {
        $all(".notification.is-unread").forEach(function (item) { item.classList.remove("is-unread"); });
        bumpBadge(-1e9);
      }).catch(function (error) { toast("Could not mark them read", error.message, "error"); });
    }
  });

  document.addEventListener("change", function (event) {
    var select = event.target.closest(".availability-select");
    if (!select) return;
    var form = select.form;
    var frame = { type: "availability", status: select.value };
    act(frame, form.action, new FormData(form)).then(function () {
      $("[data-my-presence]").className = "presence presence--" + select.value;
    }, function (error) { toast("Availability not changed", error.message, "error"); });
  });

  document.addEventListener("input", function (event) {
    var text = event.target.closest("[data-composer-text]");
    if (!text) return;
    autosize(text);
    typingInput(text);
    showCanned(text);
  });

  document.addEventListener("keydown", function (event) {
    var text = event.target.closest("[data-composer-text]");
    if (!text) {
      if (event.key === "Escape") toggleNotifications(false);
      return;
    }
    if (cannedOpen()) {
      var items = $all(".canned-item");
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        state.cannedIndex = (state.cannedIndex + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        items.forEach(function (item, index) { item.setAttribute("aria-selected", index === state.cannedIndex ? "true" : "false"); });
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        applyCanned(text, items[state.cannedIndex].dataset.shortcut);
        return;
      }
      if (event.key === "Escape") { event.preventDefault(); closeCanned(); return; }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitComposer(text.form);
    }
  });

  window.addEventListener("focus", markRead);
  document.addEventListener("visibilitychange", markRead);

  window.addEventListener("popstate", function () {
    var match = /\/c\/([0-9a-f-]{36})\//.exec(location.pathname);
    if (match) openConversation(match[1], false); else closeConversation(false);
  });

  // ---- Start ------------------------------------------------------------------------------------------

  var initial = pane();
  if (initial) {
    state.open = initial.dataset.conversation;
    state.lastSeq = parseInt(initial.dataset.lastSeq, 10) || 0;
    root.classList.add("has-conversation");
    scrollToEnd(true);
  }
  renderTimes(document);
  updateEmpty();
  setInterval(function () { renderTimes(document); }, 60000);
  connect();
  markRead();
})();
