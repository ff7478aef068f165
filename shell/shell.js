// The page before the app starts: inlined by trunk into index.html and console/index.html.
// It speaks the visitor's language, keeps the home page's heading only on the home page, and
// says what is wrong when the app cannot start (a browser without WebAssembly or modules, a
// script that did not load, a start that takes too long). Plain ES5: it must run in the old
// browsers it warns about. The app removes the shell (#shell) when it mounts.
(function () {
  var TEXT = {
    en: {
      ready: "Getting the video chat ready…",
      console: "Getting the console ready…",
      console_failed: "The console could not start. Please check your connection and reload the page.",
      old: "This browser is too old for video chats. Please open this page in a current Chrome, Firefox, Safari or Edge.",
      failed: "The video chat could not start. Please check your connection and reload the page.",
      slow: "This is taking longer than it should. Please check your connection and reload the page."
    },
    de: {
      title: "Mit einer Fachkraft sprechen",
      lead: "Starten Sie einen Videochat, und wir verbinden Sie mit der nächsten freien Fachkraft.",
      ready: "Der Videochat wird vorbereitet …",
      console: "Die Konsole wird vorbereitet …",
      console_failed: "Die Konsole konnte nicht starten. Bitte prüfen Sie Ihre Verbindung und laden Sie die Seite neu.",
      old: "Dieser Browser ist für Videochats zu alt. Bitte öffnen Sie diese Seite in einem aktuellen Chrome, Firefox, Safari oder Edge.",
      failed: "Der Videochat konnte nicht starten. Bitte prüfen Sie Ihre Verbindung und laden Sie die Seite neu.",
      slow: "Das dauert länger als üblich. Bitte prüfen Sie Ihre Verbindung und laden Sie die Seite neu."
    }
  };
  var lang = null;
  try {
    lang = window.localStorage.getItem("callqueue.lang");
  } catch (e) {}
  if (!TEXT[lang]) {
    lang = "en";
    var tags = navigator.languages || [navigator.language || "en"];
    for (var i = 0; i < tags.length; i++) {
      var primary = String(tags[i]).split(/[-_]/)[0].toLowerCase();
      if (TEXT[primary]) {
        lang = primary;
        break;
      }
    }
  }
  var text = TEXT[lang];
  document.documentElement.lang = lang;
  var shell = document.getElementById("shell");
  if (!shell) return;
  var nodes = shell.querySelectorAll("[data-shell]");
  for (var j = 0; j < nodes.length; j++) {
    var key = nodes[j].getAttribute("data-shell");
    if (key === "title" || key === "lead") {
      if (location.pathname !== "/") nodes[j].parentNode.removeChild(nodes[j]);
      else if (text[key]) nodes[j].textContent = text[key];
    }
  }
  var status = document.getElementById("shell-status");
  function say(key, problem) {
    if (!status || !document.getElementById("shell")) return;
    status.textContent = text[key];
    if (problem) status.className = "notice";
  }
  var forConsole = shell.getAttribute("data-shell-for") === "console";
  say(forConsole ? "console" : "ready", false);
  var modules = "noModule" in document.createElement("script");
  if (typeof WebAssembly !== "object" || !modules) {
    say("old", true);
    return;
  }
  // A script or the wasm that failed to load or to start.
  window.addEventListener("error", function (e) {
    var t = e.target && e.target.tagName;
    if (t === "SCRIPT" || t === "LINK" || e.error) say(forConsole ? "console_failed" : "failed", true);
  }, true);
  window.addEventListener("unhandledrejection", function () {
    say(forConsole ? "console_failed" : "failed", true);
  });
  setTimeout(function () {
    say("slow", true);
  }, 20000);
})();
