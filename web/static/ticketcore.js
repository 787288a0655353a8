/* TicketCore pages: live updates, keyboard shortcuts and small conveniences.
 * Plain JavaScript, no build step, no third-party code. Every page works without it. */
(function () {
  "use strict";

  var body = document.body;

  /* --- small helpers ------------------------------------------------------------------- */

  /* Tell screen-reader users that the page changed (the text comes from the page, in its
   * language). */
  function announce() {
    var region = document.getElementById("live-status");
    if (region) { region.textContent = region.getAttribute("data-text") || ""; }
  }

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  /* Replace each [data-part] of the page by the part of the same name in `html`, except a
   * part holding the focus (someone is working in it). */
  function replaceParts(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("[data-part]").forEach(function (fresh) {
      var name = fresh.getAttribute("data-part");
      if (name === "counts") {
        fresh.querySelectorAll("[data-count]").forEach(function (count) {
          var key = count.getAttribute("data-count");
          document.querySelectorAll("nav [data-count='" + key + "']").forEach(function (el) {
            el.textContent = count.textContent;
          });
        });
        return;
      }
      var current = document.querySelector("[data-part='" + name + "']");
      if (!current) { return; }
      var focused = current.contains(document.activeElement);
      var selected = current.querySelector("tr.selected");
      if (focused && !selected) { return; }  /* someone is typing in this part */
      var selectedId = selected && selected.getAttribute("data-ticket-id");
      current.replaceWith(document.importNode(fresh, true));
      if (selectedId) {  /* keep the queue's selection (and focus) on the same ticket */
        var row = document.querySelector("tr[data-ticket-id='" + selectedId + "']");
        if (row) {
          row.classList.add("selected");
          var link = row.querySelector("a");
          if (focused && link) { link.focus(); }
        }
      }
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  /* --- live updates over server-sent events -------------------------------------------- */

  var live = body.getAttribute("data-live");
  if (live && window.EventSource) {
    var ticketId = body.getAttribute("data-ticket-id");
    var fragmentUrl = body.getAttribute("data-fragment-url");
    var refresh = debounce(function () {
      fetch(fragmentUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          replaceParts(html);
          announce();
          body.setAttribute("data-live-updates",
            String(Number(body.getAttribute("data-live-updates") || "0") + 1));
        })
        .catch(function () { /* the next event tries again */ });
    }, 250);

    var after = body.getAttribute("data-live-after");
    var source = new EventSource("/live" + (after ? "?after=" + encodeURIComponent(after) : ""));
    source.addEventListener("ready", function () { body.setAttribute("data-live-ready", "1"); });
    source.addEventListener("ticket", function (message) {
      var data = JSON.parse(message.data);
      if (live === "queue") {
        refresh();
      } else if (String(data.ticket_id) === ticketId) {
        var stale = document.querySelector("[data-stale]");
        if (stale) { stale.hidden = false; }
        if (fragmentUrl) { refresh(); }
      }
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  /* --- keyboard shortcuts --------------------------------------------------------------- */

  function queueRows() {
    return Array.prototype.slice.call(document.querySelectorAll("table[data-queue] tbody tr"));
  }

  function move(step) {
    var rows = queueRows();
    if (!rows.length) { return; }
    var index = rows.findIndex(function (row) { return row.classList.contains("selected"); });
    var next = Math.max(0, Math.min(rows.length - 1, index < 0 ? 0 : index + step));
    rows.forEach(function (row) { row.classList.remove("selected"); });
    rows[next].classList.add("selected");
    var link = rows[next].querySelector("a");
    if (link) { link.focus(); }
  }

  function compose(kind) {
    var radio = document.getElementById("kind-" + kind);
    var text = document.getElementById("compose-body");
    if (!radio || !text) { return false; }
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    text.focus();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var handled = true;
    switch (event.key) {
      case "/":
        var search = document.getElementById("search");
        if (search) { search.focus(); search.select(); } else { window.location.href = "/agent/search"; }
        break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o":
        var selected = document.querySelector("table[data-queue] tr.selected a");
        if (selected) { selected.click(); } else { handled = false; }
        break;
      case "r": handled = compose("reply"); break;
      case "n": handled = compose("note"); break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  });

  /* --- forms ----------------------------------------------------------------------------- */

  /* A notice after an action (?done=... or ?error=...) is shown once: drop it from the
   * address so that a reload or a bookmark does not repeat it. */
  if (/[?&](done|error)=/.test(window.location.search) && window.history.replaceState) {
    var params = new URLSearchParams(window.location.search);
    params.delete("done");
    params.delete("error");
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var composeForm = document.getElementById("compose");
  if (composeForm) {
    composeForm.addEventListener("change", function () {
      var note = document.getElementById("kind-note");
      composeForm.classList.toggle("note-mode", Boolean(note && note.checked));
    });
  }

  /* --- portal and agent extras: presence on a ticket -------------------------------------
   * The agent's ticket page beats every few seconds ("viewing", or "replying" while the
   * draft has text) and shows who else is there; closing the page says goodbye. */
  var presenceUrl = body.getAttribute("data-presence-url");
  var presenceCsrf = document.querySelector("input[name='_csrf']");
  if (presenceUrl && presenceCsrf && window.fetch && window.URLSearchParams) {
    var presenceEvery = Number(body.getAttribute("data-presence-every") || "15") * 1000;
    var draft = document.getElementById("compose-body");
    var lastMode = "viewing";
    var leaving = false;
    var presenceMode = function () {
      return draft && draft.value.trim() ? "replying" : "viewing";
    };
    var beat = function () {
      lastMode = presenceMode();
      var form = new URLSearchParams();
      form.set("_csrf", presenceCsrf.value);
      form.set("mode", lastMode);
      fetch(presenceUrl, { method: "POST", credentials: "same-origin", body: form,
                           headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html !== null) { replaceParts(html); } })
        .catch(function () { /* the next beat tries again */ });
    };
    window.setInterval(beat, presenceEvery);
    if (draft) {
      draft.addEventListener("input", function () {
        if (presenceMode() !== lastMode) { beat(); }
      });
    }
    /* A form sent from this page comes back to it: no goodbye then (it would race the
     * next page's first beat). */
    document.addEventListener("submit", function () { leaving = true; });
    window.addEventListener("pagehide", function () {
      if (leaving || !navigator.sendBeacon) { return; }
      var bye = new URLSearchParams();
      bye.set("_csrf", presenceCsrf.value);
      bye.set("leave", "1");
      navigator.sendBeacon(presenceUrl, bye);
    });
  }
})();
