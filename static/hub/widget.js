/*
 * Hub web chat widget. One script tag, no framework, no build step:
 *
 *   <script src="https://hub.example.com/static/hub/widget.js"
 *           data-tenant="<slug>" data-channel="<channel_token>" async></script>
 *
 * Optional attributes: data-lang ("de", "pt-BR"; default: the browser's language),
 * data-position ("left" | "right"), data-open ("true": open at load).
 * Everything renders in a shadow root, so the page's CSS cannot reach it (nor it the page's).
 * Protocol: docs/webchat.md (CONTRACT §7). Also exposes window.HubChat.open()/close()/toggle().
 */
(function () {
  "use strict";

  var script =
    document.currentScript ||
    document.querySelector('script[data-tenant][data-channel][src*="widget.js"]');
  if (!script || window.HubChat) return;

  var BASE = new URL(script.src, location.href).origin;
  var TENANT = script.getAttribute("data-tenant") || "";
  var CHANNEL = script.getAttribute("data-channel") || "";
  var POSITION = script.getAttribute("data-position") === "left" ? "left" : "right";
  var LANG = (script.getAttribute("data-lang") || navigator.language || "en").trim();
  var API = BASE + "/webchat/" + encodeURIComponent(TENANT) + "/" + encodeURIComponent(CHANNEL);
  var STORE_KEY = "hub-webchat:" + TENANT + ":" + CHANNEL;
  var PING_MS = 15000;
  var TYPING_REFRESH_MS = 2500;
  var TYPING_IDLE_MS = 2000;
  var TYPING_SAFETY_MS = 6000;
  var MAX_IMAGE_BYTES = 10 * 1024 * 1024;

  /* ---------------------------------------------------------------- translations */

  var DICTIONARY = {
    en: {
      open: "Open chat", close: "Close chat", title: "Chat with us",
      placeholder: "Write a message…", send: "Send message", attach: "Send an image",
      ai: "AI assistant", aiStatus: "Replies instantly", online: "Online",
      offline: "Will reply soon", team: "Our team will reply here soon",
      typing: "{name} is typing", someone: "Someone",
      sending: "Sending", sent: "Sent", delivered: "Delivered", read: "Read",
      failed: "Not sent. Tap to retry.", reconnecting: "Reconnecting…",
      unavailable: "This chat is not available on this website.",
      welcome: "Hi there! How can we help you today?",
      welcomeHint: "Ask us anything: we are here to help.",
      deleted: "This message was deleted.", image: "Image", file: "File",
      location: "Location", unsupported: "This message cannot be shown here.",
      uploadFailed: "The image could not be sent.", tooLarge: "Images can be up to 10 MB.",
      notImage: "Only images can be sent here.", messages: "Messages", you: "You",
      unread: "{count} unread messages", powered: "Powered by Hub"
    },
    de: {
      open: "Chat öffnen", close: "Chat schließen", title: "Schreiben Sie uns",
      placeholder: "Nachricht schreiben…", send: "Nachricht senden", attach: "Bild senden",
      ai: "KI-Assistent", aiStatus: "Antwortet sofort", online: "Online",
      offline: "Antwortet bald", team: "Unser Team antwortet hier in Kürze",
      typing: "{name} schreibt", someone: "Jemand",
      sending: "Wird gesendet", sent: "Gesendet", delivered: "Zugestellt", read: "Gelesen",
      failed: "Nicht gesendet. Tippen zum Wiederholen.", reconnecting: "Verbindung wird wiederhergestellt…",
      unavailable: "Dieser Chat ist auf dieser Website nicht verfügbar.",
      welcome: "Hallo! Wie können wir Ihnen helfen?",
      welcomeHint: "Fragen Sie uns alles: Wir helfen gern.",
      deleted: "Diese Nachricht wurde gelöscht.", image: "Bild", file: "Datei",
      location: "Standort", unsupported: "Diese Nachricht kann hier nicht angezeigt werden.",
      uploadFailed: "Das Bild konnte nicht gesendet werden.", tooLarge: "Bilder dürfen höchstens 10 MB groß sein.",
      notImage: "Hier können nur Bilder gesendet werden.", messages: "Nachrichten", you: "Sie",
      unread: "{count} ungelesene Nachrichten", powered: "Bereitgestellt von Hub"
    },
    fr: {
      open: "Ouvrir le chat", close: "Fermer le chat", title: "Discutons",
      placeholder: "Écrivez un message…", send: "Envoyer", attach: "Envoyer une image",
      ai: "Assistant IA", aiStatus: "Répond immédiatement", online: "En ligne",
      offline: "Répondra bientôt", team: "Notre équipe vous répondra ici très vite",
      typing: "{name} écrit", someone: "Quelqu’un",
      sending: "Envoi", sent: "Envoyé", delivered: "Distribué", read: "Lu",
      failed: "Non envoyé. Touchez pour réessayer.", reconnecting: "Reconnexion…",
      unavailable: "Ce chat n’est pas disponible sur ce site.",
      welcome: "Bonjour ! Comment pouvons-nous vous aider ?",
      welcomeHint: "Posez-nous vos questions : nous sommes là pour vous aider.",
      deleted: "Ce message a été supprimé.", image: "Image", file: "Fichier",
      location: "Lieu", unsupported: "Ce message ne peut pas être affiché ici.",
      uploadFailed: "L’image n’a pas pu être envoyée.", tooLarge: "Les images peuvent faire jusqu’à 10 Mo.",
      notImage: "Seules les images peuvent être envoyées ici.", messages: "Messages", you: "Vous",
      unread: "{count} messages non lus", powered: "Propulsé par Hub"
    },
    es: {
      open: "Abrir chat", close: "Cerrar chat", title: "Habla con nosotros",
      placeholder: "Escribe un mensaje…", send: "Enviar mensaje", attach: "Enviar una imagen",
      ai: "Asistente de IA", aiStatus: "Responde al instante", online: "En línea",
      offline: "Responderá pronto", team: "Nuestro equipo te responderá aquí pronto",
      typing: "{name} está escribiendo", someone: "Alguien",
      sending: "Enviando", sent: "Enviado", delivered: "Entregado", read: "Leído",
      failed: "No enviado. Toca para reintentar.", reconnecting: "Reconectando…",
      unavailable: "Este chat no está disponible en este sitio.",
      welcome: "¡Hola! ¿En qué podemos ayudarte?",
      welcomeHint: "Pregúntanos lo que quieras: estamos para ayudarte.",
      deleted: "Este mensaje fue eliminado.", image: "Imagen", file: "Archivo",
      location: "Ubicación", unsupported: "Este mensaje no se puede mostrar aquí.",
      uploadFailed: "No se pudo enviar la imagen.", tooLarge: "Las imágenes pueden pesar hasta 10 MB.",
      notImage: "Aquí solo se pueden enviar imágenes.", messages: "Mensajes", you: "Tú",
      unread: "{count} mensajes sin leer", powered: "Con la tecnología de Hub"
    },
    pt: {
      open: "Abrir chat", close: "Fechar chat", title: "Fale conosco",
      placeholder: "Escreva uma mensagem…", send: "Enviar mensagem", attach: "Enviar uma imagem",
      ai: "Assistente de IA", aiStatus: "Responde na hora", online: "Online",
      offline: "Responderá em breve", team: "Nossa equipe responderá aqui em breve",
      typing: "{name} está digitando", someone: "Alguém",
      sending: "Enviando", sent: "Enviada", delivered: "Entregue", read: "Lida",
      failed: "Não enviada. Toque para tentar de novo.", reconnecting: "Reconectando…",
      unavailable: "Este chat não está disponível neste site.",
      welcome: "Olá! Como podemos ajudar?",
      welcomeHint: "Pergunte o que quiser: estamos aqui para ajudar.",
      deleted: "Esta mensagem foi apagada.", image: "Imagem", file: "Arquivo",
      location: "Localização", unsupported: "Esta mensagem não pode ser exibida aqui.",
      uploadFailed: "Não foi possível enviar a imagem.", tooLarge: "As imagens podem ter até 10 MB.",
      notImage: "Aqui só é possível enviar imagens.", messages: "Mensagens", you: "Você",
      unread: "{count} mensagens não lidas", powered: "Desenvolvido por Hub"
    }
  };
  var STRINGS = DICTIONARY[LANG.toLowerCase().split("-")[0]] || DICTIONARY.en;

  function t(key, values) {
    var text = STRINGS[key] || DICTIONARY.en[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.replace("{" + name + "}", values[name]);
    });
    return text;
  }

  /* ---------------------------------------------------------------- small helpers */

  function storeRead() {
    try {
      return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
    } catch (e) {
      return {};
    }
  }
  function storeWrite(data) {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(data));
    } catch (e) {
      /* Private mode or a full quota: the chat works, it just starts over next time. */
    }
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }
  function svg(path, size) {
    var ns = "http://www.w3.org/2000/svg";
    var node = document.createElementNS(ns, "svg");
    node.setAttribute("viewBox", "0 0 24 24");
    node.setAttribute("width", size || 20);
    node.setAttribute("height", size || 20);
    node.setAttribute("aria-hidden", "true");
    node.setAttribute("focusable", "false");
    path.split("|").forEach(function (d) {
      var p = document.createElementNS(ns, "path");
      p.setAttribute("d", d);
      node.appendChild(p);
    });
    return node;
  }
  var ICONS = {
    chat: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z",
    close: "M6.7 5.3 12 10.6l5.3-5.3 1.4 1.4-5.3 5.3 5.3 5.3-1.4 1.4-5.3-5.3-5.3 5.3-1.4-1.4 5.3-5.3-5.3-5.3z",
    minimize: "M5 11h14v2H5z",
    send: "M3.4 20.4 21 12 3.4 3.6 3.3 10l12.2 2-12.2 2z",
    image: "M5 4h14a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm0 2v9.6l3.3-3.3a1 1 0 0 1 1.4 0l2.8 2.8 1.8-1.8a1 1 0 0 1 1.4 0L19 16.6V6zm10 1.5a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3z",
    bot: "M12 2a1.5 1.5 0 0 1 1 2.6V6h4a3 3 0 0 1 3 3v7a3 3 0 0 1-3 3H7a3 3 0 0 1-3-3V9a3 3 0 0 1 3-3h4V4.6A1.5 1.5 0 0 1 12 2zM9 11a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm6 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zM1 11h2v4H1zm20 0h2v4h-2z",
    check: "M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z",
    checks: "M1.5 12.9 6 17.4l1.1-1.1-4.5-4.5zM22.4 5.6 11.9 16.1 7.9 12.1l-1.1 1.1 5.1 5.1L23.5 6.7zM18.2 6.7l-1.1-1.1-6.5 6.5 1.1 1.1z",
    clock: "M12 3a9 9 0 1 1 0 18 9 9 0 0 1 0-18zm0 2a7 7 0 1 0 0 14 7 7 0 0 0 0-14zm1 2v4.6l3.2 1.9-1 1.7L11 12.7V7z",
    alert: "M12 2 1 21h22zm-1 7h2v6h-2zm0 8h2v2h-2z",
    pin: "M12 2a7 7 0 0 1 7 7c0 5-7 13-7 13S5 14 5 9a7 7 0 0 1 7-7zm0 4.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5z"
  };
  function contrastText(hex) {
    var value = hex.replace("#", "");
    if (value.length === 3) value = value.replace(/(.)/g, "$1$1");
    var rgb = [0, 2, 4].map(function (i) {
      var c = parseInt(value.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    return luminance > 0.45 ? "#0f172a" : "#ffffff";
  }
  function shade(hex, amount) {
    var value = hex.replace("#", "");
    if (value.length === 3) value = value.replace(/(.)/g, "$1$1");
    var out = "#";
    for (var i = 0; i < 6; i += 2) {
      var c = Math.max(0, Math.min(255, Math.round(parseInt(value.substr(i, 2), 16) * (1 + amount))));
      out += ("0" + c.toString(16)).slice(-2);
    }
    return out;
  }
  function initials(name) {
    var parts = (name || "").trim().split(/\s+/).filter(Boolean);
    return ((parts[0] || "")[0] || "").concat((parts[1] || "")[0] || "").toUpperCase();
  }
  function hubUrl(path) {
    return /^https?:\/\//.test(path) ? path : BASE + path;
  }
  function safeUrl(url) {
    try {
      var parsed = new URL(url, BASE);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }
  var timeFormat;
  try {
    timeFormat = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit" });
  } catch (e) {
    timeFormat = new Intl.DateTimeFormat("en", { hour: "2-digit", minute: "2-digit" });
  }

  /* ---------------------------------------------------------------- styles */

  var CSS = [
    ":host{all:initial}",
    "*,*::before,*::after{box-sizing:border-box}",
    ".root{--accent:#2563eb;--accent-dark:#1d4ed8;--on-accent:#fff;--ink:#0f172a;--muted:#64748b;",
    "--line:#e5e7eb;--surface:#f6f7fb;font:14px/1.45 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,",
    "'Helvetica Neue',Arial,sans-serif;color:var(--ink);-webkit-font-smoothing:antialiased;",
    "position:fixed;bottom:20px;z-index:2147483000}",
    ".root.right{right:20px}.root.left{left:20px}",
    "button{font:inherit;color:inherit;cursor:pointer;border:0;background:none;padding:0}",
    "button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    ".launcher{position:relative;width:60px;height:60px;border-radius:50%;background:var(--accent);",
    "color:var(--on-accent);display:grid;place-items:center;box-shadow:0 10px 30px rgba(15,23,42,.22),",
    "0 2px 6px rgba(15,23,42,.12);transition:transform .18s ease,box-shadow .18s ease}",
    ".launcher:hover{transform:translateY(-2px) scale(1.03);box-shadow:0 14px 34px rgba(15,23,42,.26)}",
    ".launcher svg{fill:currentColor;transition:transform .2s ease}",
    ".launcher:focus-visible{outline-color:var(--ink)}",
    ".badge{position:absolute;top:-2px;right:-2px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;",
    "background:#ef4444;color:#fff;font-size:12px;font-weight:700;display:grid;place-items:center;",
    "border:2px solid #fff}",
    ".badge[hidden]{display:none}",
    ".panel{position:absolute;bottom:76px;width:380px;height:min(640px,calc(100vh - 120px));",
    "background:#fff;border-radius:18px;overflow:hidden;display:flex;flex-direction:column;",
    "box-shadow:0 24px 64px rgba(15,23,42,.24),0 4px 14px rgba(15,23,42,.08);",
    "transform-origin:bottom right;animation:pop .2s ease-out}",
    ".left .panel{transform-origin:bottom left}",
    ".right .panel{right:0}.left .panel{left:0}",
    ".panel[hidden]{display:none}",
    "@keyframes pop{from{opacity:0;transform:translateY(12px) scale(.98)}to{opacity:1;transform:none}}",
    "header{background:linear-gradient(135deg,var(--accent),var(--accent-dark));color:var(--on-accent);",
    "padding:16px 14px 16px 18px;display:flex;align-items:center;gap:12px;flex:none}",
    ".avatar{width:42px;height:42px;border-radius:50%;background:rgba(255,255,255,.2);display:grid;",
    "place-items:center;font-weight:700;font-size:15px;flex:none;position:relative}",
    ".avatar svg{fill:currentColor}",
    ".avatar .dot{position:absolute;right:0;bottom:0;width:12px;height:12px;border-radius:50%;",
    "border:2px solid var(--accent-dark);background:#94a3b8}",
    ".avatar .dot.online{background:#22c55e}",
    ".who{flex:1;min-width:0}",
    ".who h2{margin:0;font-size:16px;font-weight:650;line-height:1.25;white-space:nowrap;overflow:hidden;",
    "text-overflow:ellipsis;letter-spacing:-.01em}",
    ".who p{margin:2px 0 0;font-size:12.5px;opacity:.88;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    ".icon-button{width:36px;height:36px;border-radius:10px;display:grid;place-items:center;color:inherit}",
    ".icon-button svg{fill:currentColor}",
    "header .icon-button:hover{background:rgba(255,255,255,.16)}",
    ".banner{background:#fef3c7;color:#92400e;font-size:12.5px;padding:6px 14px;text-align:center;flex:none}",
    ".banner[hidden]{display:none}",
    ".banner.error{background:#fee2e2;color:#991b1b}",
    ".log{flex:1;overflow-y:auto;background:var(--surface);padding:18px 14px 8px;display:flex;",
    "flex-direction:column;gap:2px;overscroll-behavior:contain;scroll-behavior:smooth}",
    ".welcome{align-self:center;text-align:center;color:var(--muted);font-size:13.5px;",
    "margin:auto 16px;max-width:280px;display:flex;flex-direction:column;align-items:center;gap:4px}",
    ".welcome[hidden]{display:none}",
    ".welcome-icon{width:56px;height:56px;border-radius:18px;display:grid;place-items:center;margin-bottom:8px;",
    "background:color-mix(in srgb,var(--accent) 12%,#fff);color:var(--accent)}",
    ".welcome-icon svg{fill:currentColor}",
    ".welcome strong{display:block;color:var(--ink);font-size:16px;font-weight:650}",
    ".row{display:flex;flex-direction:column;max-width:82%;margin-top:2px}",
    ".row.first{margin-top:12px}",
    ".row.mine{align-self:flex-end;align-items:flex-end}",
    ".row.theirs{align-self:flex-start;align-items:flex-start}",
    ".sender{font-size:11.5px;color:var(--muted);margin:0 0 4px 4px;display:flex;align-items:center;gap:6px}",
    ".pill{font-size:10px;font-weight:700;letter-spacing:.04em;padding:1px 6px;border-radius:6px;",
    "background:#ede9fe;color:#6d28d9}",
    ".bubble{padding:9px 13px;border-radius:18px;white-space:pre-wrap;overflow-wrap:anywhere;",
    "word-break:break-word}",
    ".mine .bubble{background:var(--accent);color:var(--on-accent);border-bottom-right-radius:6px}",
    ".theirs .bubble{background:#fff;border:1px solid var(--line);border-bottom-left-radius:6px;",
    "box-shadow:0 1px 2px rgba(15,23,42,.04)}",
    ".bubble a{color:inherit;text-decoration:underline;text-underline-offset:2px}",
    ".bubble.deleted{font-style:italic;opacity:.7}",
    ".bubble.media{padding:4px;background:#fff;border:1px solid var(--line)}",
    ".mine .bubble.media{background:var(--accent)}",
    ".bubble img{display:block;max-width:100%;max-height:240px;border-radius:14px;object-fit:cover}",
    ".bubble .caption{padding:6px 8px 4px}",
    ".meta{font-size:11px;color:var(--muted);margin:3px 6px 0;display:flex;align-items:center;gap:4px}",
    ".meta svg{fill:currentColor}",
    ".meta .read{color:#0ea5e9}",
    ".meta.failed{color:#dc2626;cursor:pointer}",
    ".choices{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}",
    ".choice{border:1.5px solid var(--accent);color:var(--accent);background:#fff;border-radius:999px;",
    "padding:6px 13px;font-size:13px;font-weight:600;transition:background .15s,color .15s}",
    ".choice:hover:not(:disabled){background:var(--accent);color:var(--on-accent)}",
    ".choice:disabled{opacity:.45;cursor:default}",
    ".choice.picked{background:var(--accent);color:var(--on-accent);opacity:1}",
    ".typing{align-self:flex-start;display:flex;align-items:center;gap:8px;margin:10px 0 4px;",
    "color:var(--muted);font-size:12px}",
    ".typing[hidden]{display:none}",
    ".dots{background:#fff;border:1px solid var(--line);border-radius:18px;border-bottom-left-radius:6px;",
    "padding:12px 14px;display:flex;gap:4px}",
    ".dots i{width:7px;height:7px;border-radius:50%;background:#94a3b8;animation:blink 1.2s infinite}",
    ".dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}",
    "@keyframes blink{0%,60%,100%{opacity:.3;transform:translateY(0)}30%{opacity:1;transform:translateY(-3px)}}",
    "form{display:flex;align-items:flex-end;gap:6px;padding:10px 10px 10px 12px;border-top:1px solid var(--line);",
    "background:#fff;flex:none}",
    "textarea{flex:1;resize:none;border:1px solid transparent;background:#f1f3f8;border-radius:14px;",
    "padding:10px 12px;font:inherit;color:var(--ink);max-height:120px;min-height:42px;line-height:1.4}",
    "textarea:focus{outline:none;background:#fff;border-color:var(--accent);",
    "box-shadow:0 0 0 3px color-mix(in srgb,var(--accent) 18%,transparent)}",
    "textarea::placeholder{color:#94a3b8}",
    ".attach{color:var(--muted);width:40px;height:42px}",
    ".attach:hover{color:var(--accent);background:#f1f3f8}",
    ".send{width:42px;height:42px;border-radius:50%;background:var(--accent);color:var(--on-accent);",
    "display:grid;place-items:center;flex:none;transition:opacity .15s,transform .15s}",
    ".send svg{fill:currentColor}",
    ".send:disabled{opacity:.35;cursor:default}",
    ".send:not(:disabled):hover{transform:scale(1.05)}",
    "footer{text-align:center;font-size:11px;color:#94a3b8;padding:0 0 8px;background:#fff;flex:none}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (max-width:480px){.root{bottom:14px}.root.right{right:14px}.root.left{left:14px}",
    ".root.open .launcher{display:none}",
    ".panel{position:fixed;inset:0;width:auto;height:auto;border-radius:0;bottom:0}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important;scroll-behavior:auto!important}}"
  ].join("");

  /* ---------------------------------------------------------------- state */

  var state = {
    token: storeRead().token || null,
    outbox: storeRead().outbox || [],
    messages: {}, // id -> message
    order: [], // ids by seq
    pendingImages: {}, // client_id -> object URL preview
    lastSeq: 0,
    teamReadSeq: 0,
    visitorReadSeq: 0,
    answering: null,
    socket: null,
    connected: false,
    everConnected: false,
    retries: 0,
    reconnectTimer: null,
    pingTimer: null,
    typingSent: 0,
    typingIdle: null,
    typingSafety: null,
    open: false,
    unread: 0,
    blocked: false,
    starting: null,
    appearance: { title: t("title"), color: "#2563eb" }
  };

  /* ---------------------------------------------------------------- DOM */

  var host = el("div", { id: "hub-webchat" });
  var shadow = host.attachShadow({ mode: "open" });
  shadow.appendChild(el("style", { text: CSS }));
  var panelId = "hub-webchat-panel";
  var badge = el("span", { class: "badge", hidden: true, "aria-hidden": "true" });
  var launcherIcon = svg(ICONS.chat, 28);
  var launcher = el("button", {
    class: "launcher", type: "button", "aria-label": t("open"), "aria-expanded": "false",
    "aria-controls": panelId, onclick: function () { toggle(); }
  }, [launcherIcon, badge]);
  var avatar = el("div", { class: "avatar", "aria-hidden": "true" });
  var titleNode = el("h2", { id: "hub-webchat-title", text: state.appearance.title });
  var statusNode = el("p", { text: "" });
  var banner = el("div", { class: "banner", role: "status", hidden: true });
  var log = el("div", {
    class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": t("messages"), tabindex: "0"
  });
  var welcome = el("div", { class: "welcome" }, [
    el("div", { class: "welcome-icon", "aria-hidden": "true" }, [svg(ICONS.chat, 26)]),
    el("strong", { text: t("welcome") }),
    el("span", { text: t("welcomeHint") })
  ]);
  var typingLabel = el("span", { text: "" });
  var typingRow = el("div", { class: "typing", hidden: true, role: "status" }, [
    el("div", { class: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]), typingLabel
  ]);
  var textarea = el("textarea", {
    rows: "1", placeholder: t("placeholder"), "aria-label": t("placeholder"), maxlength: "4096",
    enterkeyhint: "send"
  });
  var fileInput = el("input", {
    type: "file", accept: "image/png,image/jpeg,image/gif,image/webp", hidden: true, tabindex: "-1"
  });
  var attachButton = el("button", {
    class: "icon-button attach", type: "button", "aria-label": t("attach"), title: t("attach"),
    onclick: function () { fileInput.click(); }
  }, [svg(ICONS.image, 22)]);
  var sendButton = el("button", {
    class: "send", type: "submit", "aria-label": t("send"), title: t("send"), disabled: true
  }, [svg(ICONS.send, 20)]);
  var form = el("form", { novalidate: true }, [attachButton, textarea, sendButton, fileInput]);
  var panel = el("section", {
    id: panelId, class: "panel", role: "dialog", "aria-labelledby": "hub-webchat-title", hidden: true
  }, [
    el("header", {}, [
      avatar,
      el("div", { class: "who" }, [titleNode, statusNode]),
      el("button", {
        class: "icon-button", type: "button", "aria-label": t("close"), title: t("close"),
        onclick: function () { toggle(false); }
      }, [svg(ICONS.minimize, 20)])
    ]),
    banner,
    log,
    form,
    el("footer", { text: t("powered") })
  ]);
  var root = el("div", { class: "root " + POSITION, lang: LANG }, [panel, launcher]);
  shadow.appendChild(root);
  log.appendChild(welcome);
  log.appendChild(typingRow);

  function mount() {
    document.body.appendChild(host);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  /* ---------------------------------------------------------------- appearance */

  function applyAppearance(appearance) {
    state.appearance = appearance;
    var color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(appearance.color) ? appearance.color : "#2563eb";
    root.style.setProperty("--accent", color);
    root.style.setProperty("--accent-dark", shade(color, -0.18));
    root.style.setProperty("--on-accent", contrastText(color));
    titleNode.textContent = appearance.title || t("title");
    renderAnswering();
  }

  function renderAnswering() {
    var answering = state.answering;
    avatar.textContent = "";
    var dot = el("span", { class: "dot" });
    if (!answering) {
      avatar.appendChild(svg(ICONS.chat, 20));
      statusNode.textContent = t("team");
      return;
    }
    if (answering.who === "ai") {
      avatar.appendChild(svg(ICONS.bot, 22));
      dot.className = "dot online";
      statusNode.textContent = (answering.name || t("ai")) + " · " + t("aiStatus");
    } else if (answering.name) {
      avatar.appendChild(document.createTextNode(initials(answering.name)));
      var online = answering.status === "online";
      dot.className = online ? "dot online" : "dot";
      statusNode.textContent = answering.name + " · " + t(online ? "online" : "offline");
    } else {
      avatar.appendChild(svg(ICONS.chat, 20));
      statusNode.textContent = t("team");
    }
    avatar.appendChild(dot);
  }

  /* ---------------------------------------------------------------- open / close */

  function toggle(force) {
    var open = typeof force === "boolean" ? force : !state.open;
    state.open = open;
    panel.hidden = !open;
    root.classList.toggle("open", open);
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", t(open ? "close" : "open"));
    launcher.replaceChild(svg(open ? ICONS.close : ICONS.chat, open ? 24 : 28), launcher.firstChild);
    if (open) {
      start();
      setUnread(0);
      scrollToEnd(true);
      setTimeout(function () { textarea.focus(); }, 30);
      markRead();
    } else {
      launcher.focus();
    }
  }

  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") toggle(false);
  });

  function setUnread(count) {
    state.unread = count;
    badge.hidden = count === 0;
    badge.textContent = count > 9 ? "9+" : String(count);
    launcher.setAttribute("aria-label", state.open ? t("close") : count ? t("open") + " – " + t("unread", { count: count }) : t("open"));
  }

  /* ---------------------------------------------------------------- session and socket */

  function request(method, path, body, headers) {
    return fetch(API + path, {
      method: method,
      mode: "cors",
      credentials: "omit",
      headers: headers || (body ? { "Content-Type": "application/json" } : {}),
      body: body
    });
  }

  function start() {
    if (state.blocked || state.socket || state.starting) return state.starting || Promise.resolve();
    state.starting = request("POST", "/session/", JSON.stringify({
      visitor_token: state.token || "", language: LANG.slice(0, 20)
    })).then(function (response) {
      if (response.status === 403 || response.status === 404) {
        block();
        throw new Error("web chat refused: " + response.status);
      }
      if (!response.ok) throw new Error("session failed: " + response.status);
      return response.json();
    }).then(function (session) {
      if (session.conversation_id !== state.conversationId) {
        // A new visitor (or conversation): nothing of the old thread applies.
        state.messages = {};
        state.order = [];
        state.lastSeq = 0;
        state.teamReadSeq = 0;
        state.visitorReadSeq = 0;
        renderAll();
      }
      state.conversationId = session.conversation_id;
      state.token = session.visitor_token;
      save();
      applyAppearance({ title: session.title, color: session.color });
      connect(session.ws_url);
    }).catch(function (error) {
      if (!state.blocked) scheduleReconnect();
      if (window.console) console.warn("Hub chat:", error.message);
    }).then(function () {
      state.starting = null;
    });
    return state.starting;
  }

  function block() {
    state.blocked = true;
    showBanner(t("unavailable"), true);
    textarea.disabled = true;
    attachButton.disabled = true;
    sendButton.disabled = true;
  }

  function connect(wsPath) {
    var url = new URL(wsPath, BASE);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(url.href);
    state.socket = socket;
    socket.onopen = function () {
      state.connected = true;
      state.everConnected = true;
      state.retries = 0;
      showBanner(null);
      socket.send(JSON.stringify({ type: "resume", after_seq: state.lastSeq }));
      flushOutbox();
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(function () { sendFrame({ type: "ping" }); }, PING_MS);
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handleFrame(frame);
    };
    socket.onclose = function (event) {
      if (state.socket !== socket) return;
      state.socket = null;
      state.connected = false;
      clearInterval(state.pingTimer);
      hideTyping();
      renderAll();
      if (event.code === 4401) {
        // Expired or revoked: a new session (the server keeps the visitor if it still can).
        state.token = null;
        save();
        scheduleReconnect(0);
      } else if (event.code === 4403) {
        block();
      } else {
        if (state.everConnected) showBanner(t("reconnecting"));
        scheduleReconnect();
      }
    };
  }

  function scheduleReconnect(delay) {
    if (state.blocked || state.reconnectTimer) return;
    var wait = delay !== undefined ? delay : Math.min(30000, 1000 * Math.pow(2, state.retries)) * (0.5 + Math.random() / 2);
    state.retries += 1;
    state.reconnectTimer = setTimeout(function () {
      state.reconnectTimer = null;
      start();
    }, wait);
  }

  function sendFrame(frame) {
    if (state.socket && state.connected) {
      state.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function save() {
    storeWrite({
      token: state.token,
      // Unsent messages survive a reload and go out again with the same client_id (stored
      // once); an image still uploading does not (its file is gone with the page).
      outbox: state.outbox.filter(function (item) { return item.content; }).map(function (item) {
        return {
          client_id: item.client_id, content: item.content, created_at: item.created_at,
          attachments: item.attachments || []
        };
      })
    });
  }

  window.addEventListener("online", function () {
    if (!state.socket && (state.token || state.open)) {
      clearTimeout(state.reconnectTimer);
      state.reconnectTimer = null;
      start();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      sendFrame({ type: "ping" });
      markRead();
    }
  });

  /* ---------------------------------------------------------------- frames from the hub */

  function handleFrame(frame) {
    switch (frame.type) {
      case "message":
        receive(frame.message, true);
        break;
      case "ack":
        acknowledged(frame.client_id, frame.message_id, frame.seq);
        break;
      case "typing":
        if (frame.who === "visitor") break;
        if (frame.state === "start") showTyping(frame.name || (frame.who === "ai" ? t("ai") : t("someone")));
        else hideTyping();
        break;
      case "read":
        if (frame.who === "operator" && frame.seq > state.teamReadSeq) {
          state.teamReadSeq = frame.seq;
          renderAll();
        } else if (frame.who === "visitor" && frame.seq > state.visitorReadSeq) {
          // Read here or in another tab of this visitor.
          state.visitorReadSeq = frame.seq;
          countUnread();
        }
        break;
      case "presence":
        if (frame.answering) {
          state.answering = frame;
          renderAnswering();
        }
        break;
      case "error":
        failed(frame);
        break;
      default:
        break; /* pong, resumed and frames of later versions */
    }
  }

  function receive(message, live) {
    if (!message || !message.id) return;
    var known = state.messages[message.id];
    state.messages[message.id] = message;
    if (message.client_id) {
      var index = indexInOutbox(message.client_id);
      if (index >= 0) {
        // The server has it (an ack lost in a reconnect): done, not sent again.
        state.outbox.splice(index, 1);
        save();
      }
    }
    if (!known) {
      state.order.push(message.id);
      state.order.sort(function (a, b) { return state.messages[a].seq - state.messages[b].seq; });
    }
    if (message.seq > state.lastSeq) state.lastSeq = message.seq;
    if (live && message.sender_type !== "contact") hideTyping();
    renderAll();
    countUnread();
    markRead();
  }

  function countUnread() {
    var count = 0;
    state.order.forEach(function (id) {
      var message = state.messages[id];
      if (message.sender_type !== "contact" && message.seq > state.visitorReadSeq) count += 1;
    });
    setUnread(state.open ? 0 : count);
  }

  function acknowledged(clientId, messageId, seq) {
    var index = indexInOutbox(clientId);
    if (index < 0) return;
    var item = state.outbox[index];
    state.outbox.splice(index, 1);
    save();
    if (!state.messages[messageId]) {
      state.messages[messageId] = {
        id: messageId, seq: seq, direction: "in", sender_type: "contact", client_id: clientId,
        content: item.content, attachments: item.attachments || [], created_at: item.created_at,
        localImage: state.pendingImages[clientId] || null
      };
      state.order.push(messageId);
      state.order.sort(function (a, b) { return state.messages[a].seq - state.messages[b].seq; });
      if (seq > state.lastSeq) state.lastSeq = seq;
    }
    renderAll();
  }

  function failed(frame) {
    if (!frame.client_id) return;
    var item = state.outbox[indexInOutbox(frame.client_id)];
    if (!item) return;
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      setTimeout(function () { flushOne(item); }, 1200);
      return;
    }
    item.failed = true;
    item.error = frame.message;
    renderAll();
  }

  function indexInOutbox(clientId) {
    for (var i = 0; i < state.outbox.length; i++) {
      if (state.outbox[i].client_id === clientId) return i;
    }
    return -1;
  }

  /* ---------------------------------------------------------------- sending */

  function queue(content, extra) {
    var item = {
      client_id: newId(), content: content, created_at: new Date().toISOString(), failed: false
    };
    Object.keys(extra || {}).forEach(function (key) { item[key] = extra[key]; });
    state.outbox.push(item);
    save();
    renderAll();
    scrollToEnd(true);
    flushOne(item);
    start();
    return item;
  }

  function flushOne(item) {
    if (item.uploading || !item.content) return;
    item.sent = sendFrame({ type: "message", client_id: item.client_id, content: item.content });
    renderAll();
  }

  function flushOutbox() {
    state.outbox.forEach(function (item) {
      if (!item.failed) flushOne(item);
    });
  }

  function sendText(text, choice) {
    var content = { type: "text", text: text };
    if (choice) content.choice = choice;
    stopTyping();
    queue(content);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = textarea.value.trim();
    if (!text || state.blocked) return;
    textarea.value = "";
    resize();
    sendButton.disabled = true;
    sendText(text);
  });
  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  textarea.addEventListener("input", function () {
    resize();
    sendButton.disabled = !textarea.value.trim() || state.blocked;
    if (!textarea.value.trim()) {
      stopTyping();
      return;
    }
    var now = Date.now();
    if (now - state.typingSent > TYPING_REFRESH_MS) {
      state.typingSent = now;
      sendFrame({ type: "typing", state: "start" });
    }
    clearTimeout(state.typingIdle);
    state.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  function stopTyping() {
    clearTimeout(state.typingIdle);
    if (state.typingSent) {
      state.typingSent = 0;
      sendFrame({ type: "typing", state: "stop" });
    }
  }
  function resize() {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(120, textarea.scrollHeight + 2) + "px";
  }

  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) return notice(t("notImage"));
    if (file.size > MAX_IMAGE_BYTES) return notice(t("tooLarge"));
    var clientId = newId();
    var preview = URL.createObjectURL(file);
    state.pendingImages[clientId] = preview;
    var item = {
      client_id: clientId, content: null, created_at: new Date().toISOString(), uploading: true,
      preview: preview
    };
    state.outbox.push(item);
    renderAll();
    scrollToEnd(true);
    upload(item, file);
  });

  function upload(item, file) {
    (state.token ? Promise.resolve() : start()).then(function () {
      var body = new FormData();
      body.append("file", file, file.name || "image");
      return request("POST", "/attachments/", body, { Authorization: "Bearer " + state.token });
    }).then(function (response) {
      if (!response.ok) throw new Error("upload failed: " + response.status);
      return response.json();
    }).then(function (attachment) {
      item.uploading = false;
      item.content = { type: "image", attachment_id: attachment.id };
      item.attachments = [attachment];
      save();
      flushOne(item);
    }).catch(function () {
      item.uploading = false;
      item.failed = true;
      item.error = t("uploadFailed");
      item.retryUpload = function () {
        item.failed = false;
        item.uploading = true;
        renderAll();
        upload(item, file);
      };
      renderAll();
    });
  }

  function notice(text) {
    showBanner(text, true);
    setTimeout(function () { if (banner.textContent === text) showBanner(null); }, 4000);
  }

  function showBanner(text, error) {
    banner.hidden = !text;
    banner.textContent = text || "";
    banner.classList.toggle("error", !!error);
  }

  /* ---------------------------------------------------------------- read receipts */

  function markRead() {
    if (!state.open || document.visibilityState !== "visible") return;
    setUnread(0);
    for (var i = state.order.length - 1; i >= 0; i--) {
      var message = state.messages[state.order[i]];
      if (message.sender_type !== "contact") {
        if (message.seq > state.visitorReadSeq && sendFrame({ type: "read", message_id: message.id })) {
          state.visitorReadSeq = message.seq;
        }
        return;
      }
    }
  }

  /* ---------------------------------------------------------------- typing indicator */

  function showTyping(name) {
    typingLabel.textContent = t("typing", { name: name }) + "…";
    var wasHidden = typingRow.hidden;
    typingRow.hidden = false;
    if (wasHidden) scrollToEnd(false);
    clearTimeout(state.typingSafety);
    state.typingSafety = setTimeout(hideTyping, TYPING_SAFETY_MS);
  }
  function hideTyping() {
    clearTimeout(state.typingSafety);
    typingRow.hidden = true;
  }

  /* ---------------------------------------------------------------- rendering */

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }
  function scrollToEnd(force) {
    if (force || nearBottom()) {
      requestAnimationFrame(function () { log.scrollTop = log.scrollHeight; });
    }
  }

  // The seq up to which the team has read: an operator's receipt, or any reply after it.
  function readUpTo() {
    var seq = state.teamReadSeq;
    state.order.forEach(function (id) {
      var message = state.messages[id];
      if (message.sender_type !== "contact" && message.seq > seq) seq = message.seq;
    });
    return seq;
  }

  function renderAll() {
    var stick = nearBottom();
    var readSeq = readUpTo();
    var items = [];
    state.order.forEach(function (id) { items.push({ message: state.messages[id] }); });
    state.outbox.forEach(function (item) { items.push({ pending: item }); });
    var fragment = document.createDocumentFragment();
    var cache = {};
    var previousKey = null;
    var lastChoiceIndex = -1;
    var picked = {};
    items.forEach(function (item) {
      var content = item.message ? item.message.content : item.pending.content;
      if (content && content.choice) picked[content.choice.id] = true;
    });
    items.forEach(function (item, index) {
      var content = item.message && item.message.content;
      if (content && (content.type === "buttons" || content.type === "list")) lastChoiceIndex = index;
    });
    items.forEach(function (item, index) {
      var key = senderKey(item);
      var first = key !== previousKey;
      var live = index === lastChoiceIndex && index === items.length - 1;
      // Rows whose look did not change are kept, so images do not reload on every frame.
      var signature = rowSignature(item, first, readSeq, live) + "|" + Object.keys(picked).join(",");
      var kept = rows[signature];
      var node = kept || renderItem(item, first, readSeq, live, picked);
      cache[signature] = node;
      fragment.appendChild(node);
      previousKey = key;
    });
    rows = cache;
    welcome.hidden = items.length > 0;
    Array.prototype.slice.call(log.querySelectorAll(".row")).forEach(function (node) { node.remove(); });
    log.insertBefore(fragment, typingRow);
    scrollToEnd(stick);
  }

  var rows = {};

  function rowSignature(item, first, readSeq, live) {
    if (item.pending) {
      var p = item.pending;
      return ["p", p.client_id, first, !!p.content, p.uploading, p.failed, p.sent && state.connected].join("|");
    }
    var m = item.message;
    var read = m.sender_type === "contact" && m.seq <= readSeq;
    return ["m", m.id, m.seq, first, read, live && !state.blocked, m.deleted_at || "", JSON.stringify(m.content)].join("|");
  }

  function senderKey(item) {
    if (item.pending) return "me";
    var message = item.message;
    if (message.sender_type === "contact") return "me";
    return message.sender_type + ":" + (message.sender_name || "");
  }

  function renderItem(item, first, readSeq, choicesLive, picked) {
    var mine = !!item.pending || item.message.sender_type === "contact";
    var row = el("div", { class: "row " + (mine ? "mine" : "theirs") + (first ? " first" : "") });
    if (!mine && first) row.appendChild(senderLabel(item.message));
    if (item.pending) {
      var pending = item.pending;
      row.appendChild(renderContent(pending.content || { type: "image" }, pending.attachments || [], pending.preview));
      row.appendChild(pendingMeta(pending));
      return row;
    }
    var message = item.message;
    if (message.deleted_at || !message.content) {
      row.appendChild(el("div", { class: "bubble deleted", text: t("deleted") }));
    } else {
      row.appendChild(renderContent(message.content, message.attachments || [], message.localImage));
      if (message.content.type === "buttons" || message.content.type === "list") {
        row.appendChild(renderChoices(message.content, choicesLive, picked));
      }
    }
    row.appendChild(sentMeta(message, mine, readSeq));
    return row;
  }

  function senderLabel(message) {
    var label = el("div", { class: "sender" });
    if (message.sender_type === "ai") {
      label.appendChild(document.createTextNode(state.answering && state.answering.who === "ai" && state.answering.name ? state.answering.name : t("ai")));
      label.appendChild(el("span", { class: "pill", text: "AI" }));
    } else {
      label.appendChild(document.createTextNode(message.sender_name || state.appearance.title));
    }
    return label;
  }

  function renderContent(content, attachments, localImage) {
    var type = content.type;
    if (type === "text" || type === "buttons" || type === "list") {
      return linkified(content.text || "");
    }
    if (type === "image") {
      var source = localImage;
      if (!source && content.attachment_id) {
        attachments.forEach(function (a) { if (a.id === content.attachment_id) source = hubUrl(a.url); });
      }
      if (!source && attachments[0]) source = hubUrl(attachments[0].url);
      if (!source && content.url) source = safeUrl(content.url);
      var bubble = el("div", { class: "bubble media" });
      if (source) bubble.appendChild(el("img", { src: source, alt: content.caption || t("image"), loading: "lazy" }));
      else bubble.appendChild(el("div", { class: "caption", text: t("image") }));
      if (content.caption) bubble.appendChild(el("div", { class: "caption", text: content.caption }));
      bubble.querySelectorAll("img").forEach(function (img) {
        img.addEventListener("load", function () { scrollToEnd(false); });
      });
      return bubble;
    }
    if (type === "location") {
      var link = safeUrl("https://maps.google.com/?q=" + content.latitude + "," + content.longitude);
      return el("div", { class: "bubble" }, [
        svg(ICONS.pin, 14), " ",
        el("a", { href: link, target: "_blank", rel: "noopener noreferrer nofollow", text: content.name || content.address || t("location") })
      ]);
    }
    if (type === "document" || type === "audio" || type === "video") {
      var url = attachments[0] ? hubUrl(attachments[0].url) : safeUrl(content.url || "");
      var name = content.filename || content.caption || t("file");
      return el("div", { class: "bubble" }, [
        url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", text: name }) : name
      ]);
    }
    return el("div", { class: "bubble deleted", text: t("unsupported") });
  }

  function linkified(text) {
    var bubble = el("div", { class: "bubble" });
    var pattern = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
    var last = 0;
    var match;
    while ((match = pattern.exec(text))) {
      if (match.index > last) bubble.appendChild(document.createTextNode(text.slice(last, match.index)));
      bubble.appendChild(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow", text: match[0] }));
      last = match.index + match[0].length;
    }
    if (last < text.length) bubble.appendChild(document.createTextNode(text.slice(last)));
    return bubble;
  }

  function renderChoices(content, live, picked) {
    var choices = content.buttons || [];
    (content.sections || []).forEach(function (section) { choices = choices.concat(section.rows || []); });
    var group = el("div", { class: "choices", role: "group", "aria-label": content.button || content.text });
    choices.forEach(function (choice) {
      var chosen = !live && picked[choice.id];
      group.appendChild(el("button", {
        class: chosen ? "choice picked" : "choice", type: "button", disabled: !live || state.blocked,
        title: choice.description || null, "aria-pressed": chosen ? "true" : null,
        text: choice.title,
        onclick: function () { sendText(choice.title, { id: choice.id, title: choice.title }); }
      }));
    });
    return group;
  }

  function timeOf(iso) {
    try {
      return timeFormat.format(new Date(iso));
    } catch (e) {
      return "";
    }
  }

  function sentMeta(message, mine, readSeq) {
    var meta = el("div", { class: "meta" }, [el("span", { text: timeOf(message.created_at) })]);
    if (mine) {
      var read = message.seq <= readSeq;
      var tick = svg(ICONS.checks, 16);
      if (read) tick.setAttribute("class", "read");
      meta.appendChild(tick);
      meta.appendChild(el("span", { class: "sr", text: t(read ? "read" : "delivered") }));
      meta.setAttribute("title", t(read ? "read" : "delivered"));
    }
    return meta;
  }

  function pendingMeta(item) {
    if (item.failed) {
      var retry = function () {
        if (item.retryUpload) return item.retryUpload();
        item.failed = false;
        flushOne(item);
        start();
      };
      return el("button", { class: "meta failed", type: "button", onclick: retry }, [
        svg(ICONS.alert, 14), el("span", { text: item.error ? item.error + " " + t("failed") : t("failed") })
      ]);
    }
    var sent = item.sent && state.connected;
    return el("div", { class: "meta", title: t(sent ? "sent" : "sending") }, [
      el("span", { text: timeOf(item.created_at) }),
      svg(sent ? ICONS.check : ICONS.clock, sent ? 16 : 13),
      el("span", { class: "sr", text: t(sent ? "sent" : "sending") })
    ]);
  }

  /* ---------------------------------------------------------------- boot */

  renderAnswering();
  request("GET", "/config/").then(function (response) {
    if (response.status === 403 || response.status === 404) {
      block();
      return null;
    }
    return response.ok ? response.json() : null;
  }).then(function (appearance) {
    if (appearance) applyAppearance(appearance);
  }).catch(function () { /* The session call will try again. */ });
  // A returning visitor reconnects at once: replies that came while away show as unread.
  if (state.token || state.outbox.length) start();
  if (script.getAttribute("data-open") === "true") toggle(true);

  window.HubChat = {
    open: function () { toggle(true); },
    close: function () { toggle(false); },
    toggle: function () { toggle(); }
  };
})();
