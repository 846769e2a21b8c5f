// mscribe dashboard: live refresh of the page's [data-live] parts, the jobs
// filter, confirmations. Served as /ui/assets/app.js; no inline script.
"use strict";
(function () {
  var REFRESH_MS = 3000;

  function applyFilter() {
    var text = document.getElementById("job-filter");
    var status = document.getElementById("status-filter");
    if (!text || !status) return;
    var q = text.value.trim().toLowerCase();
    var s = status.value;
    var rows = document.querySelectorAll("tr[data-job]");
    var shown = 0;
    rows.forEach(function (row) {
      var ok = (q === "" || row.getAttribute("data-search").indexOf(q) !== -1) &&
        (s === "" || row.getAttribute("data-state").split(" ").indexOf(s) !== -1);
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    var count = document.getElementById("job-count");
    if (count) count.textContent = shown + " of " + rows.length + " jobs";
  }

  function refresh() {
    var live = document.querySelectorAll("[data-live][id]");
    if (live.length === 0 || document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Mscribe-Refresh": "1" } })
      .then(function (r) {
        if (r.redirected || !r.ok) return null;
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (!fresh || el.contains(document.activeElement)) return;
          if (el.innerHTML !== fresh.innerHTML) el.innerHTML = fresh.innerHTML;
        });
        applyFilter();
      })
      .catch(function () { /* the next round tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    ["job-filter", "status-filter"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) {
        el.addEventListener("input", applyFilter);
        el.addEventListener("change", applyFilter);
      }
    });
    applyFilter();
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
    window.setInterval(refresh, REFRESH_MS);
  });
})();
