// The console's own script. Every page works without it; with it:
// - times (<time datetime="...Z">) show in the viewer's zone, UTC on hover;
// - an expired access cookie is renewed at once (the renewing form submits itself);
// - keyboard shortcuts: g then a section's key goes there (o overview, i incidents, c on-call,
//   s status pages, g organization, p platform); "?" lists them; on an incident, a acknowledges;
// - on an overview filtered by state, a row the live updates moved to another state is dimmed and says
//   so ("no longer down") until the page is reloaded, rather than passing for a match.
// htmx (vendored) does the partial updates and Server-Sent Events; see static/vendor/VENDORED.md.
"use strict";
(function () {
  function localTimes(root) {
    var nodes = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var value = node.getAttribute("datetime");
      if (value.length <= 10 || node.dataset.local === "1") continue; // a date, or done already
      var moment = new Date(value);
      if (isNaN(moment.getTime())) continue;
      node.title = moment.toISOString().replace(".000Z", "Z").replace("T", " ") + " UTC";
      node.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      node.dataset.local = "1";
    }
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function leftFilter() {
    var live = document.getElementById("live");
    var wanted = live && live.dataset.stateFilter;
    if (!wanted) return;
    var rows = document.querySelectorAll("table.monitors tr[data-state]");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var off = row.dataset.state !== wanted;
      // An attribute, not a class: htmx's settling puts a swapped row's class back a moment later.
      row.toggleAttribute("data-left-filter", off);
      var cell = row.querySelector('td[data-label="State"]');
      if (off && cell && !cell.querySelector(".filter-note")) {
        var note = document.createElement("span");
        note.className = "filter-note muted";
        note.textContent = " (no longer " + wanted + ")";
        cell.appendChild(note);
      }
    }
  }

  var pending = null;
  function shortcuts(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "?") {
      var help = document.getElementById("shortcuts");
      if (help) { help.hidden = !help.hidden; event.preventDefault(); }
      return;
    }
    if (pending === "g") {
      pending = null;
      var link = document.querySelector('nav a[data-key="' + event.key + '"]');
      if (link) { event.preventDefault(); link.click(); }
      return;
    }
    if (event.key === "g") { pending = "g"; setTimeout(function () { pending = null; }, 1500); return; }
    var action = document.querySelector('[data-shortcut="' + event.key + '"]');
    if (action) { event.preventDefault(); action.focus(); action.click(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var renew = document.getElementById("renew");
    if (renew) renew.submit();
    document.addEventListener("keydown", shortcuts);
    document.body.addEventListener("htmx:afterSwap", function (event) { localTimes(event.target); });
    document.body.addEventListener("htmx:sseMessage", function (event) { localTimes(event.target); });
    document.body.addEventListener("htmx:oobAfterSwap", leftFilter); // each row a live update swapped in
  });
})();
