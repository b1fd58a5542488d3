// Live updates for the release page: the element with data-live is
// replaced by the server's rendering of it every data-every milliseconds
// (twice per controller tick), without a reload. Served from the console
// itself, so the Content-Security-Policy allows it; no inline script.
(function () {
  "use strict";
  // The live part names the actions the release's state allows now;
  // the page's forms are shown or hidden to match, so a form typed into
  // keeps its reason and a stale one is not offered.
  function showAllowed(el) {
    var a = el.querySelector("#allowed");
    if (!a) { return; }
    var ok = (a.getAttribute("data-actions") || "").split(" ");
    var any = false;
    document.querySelectorAll("form.action").forEach(function (f) {
      f.hidden = ok.indexOf(f.getAttribute("data-action")) < 0;
      any = any || !f.hidden;
    });
    var section = document.getElementById("actions");
    if (section) { section.hidden = !any; }
  }
  function follow(el) {
    var src = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-every"), 10) || 2000;
    function poll() {
      fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (resp.redirected || !resp.ok) { throw new Error("status " + resp.status); }
          return resp.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          el.removeAttribute("data-stale");
          showAllowed(el);
        })
        .catch(function () { el.setAttribute("data-stale", "true"); })
        .finally(function () { setTimeout(poll, every); });
    }
    setTimeout(poll, every);
  }
  document.querySelectorAll("[data-live]").forEach(follow);
})();
