// Progressive enhancement of the invite page (the page works the same without it): while an
// email is still queued, ask the JSON API for its delivery every second and update the row, so
// the sender sees "queued" turn into "sent" (or "failed" with the reason) without reloading.
// Served by the binary from /static/ because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var table = document.getElementById("invitations");
  if (!table || !window.fetch) {
    return;
  }
  var api = table.getAttribute("data-api");
  var givingUpAt = Date.now() + 10 * 60 * 1000;

  // The words of the page's language, written by the server on the table.
  function word(name, fallback) {
    return table.getAttribute("data-word-" + name) || fallback;
  }

  function badge(kind, value) {
    var span = document.createElement("span");
    span.className = "badge " + kind + "-" + value;
    span.textContent = word(kind + "-" + value, value);
    return span;
  }

  function small(text, className) {
    var element = document.createElement("small");
    if (className) {
      element.className = className;
    }
    element.textContent = text;
    return element;
  }

  function update(row, invitation) {
    var delivery = invitation.delivery;
    row.setAttribute("data-delivery", delivery.status);
    var cell = row.querySelector("td.delivery");
    cell.textContent = "";
    cell.appendChild(badge("delivery", delivery.status));
    if (delivery.attempts > 1) {
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(small(word("attempts", "%n attempts").replace("%n", delivery.attempts)));
    }
    if (delivery.last_error) {
      cell.appendChild(small(delivery.last_error, "error-detail"));
    }
  }

  function refresh() {
    var queued = table.querySelectorAll('tr[data-delivery="queued"]');
    if (queued.length === 0 || Date.now() > givingUpAt) {
      return;
    }
    var requests = Array.prototype.map.call(queued, function (row) {
      return fetch(api + encodeURIComponent(row.getAttribute("data-id")) + "/", {
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (invitation) { if (invitation) { update(row, invitation); } })
        .catch(function () { /* offline for a moment: try again on the next round */ });
    });
    Promise.all(requests).then(function () { window.setTimeout(refresh, 1000); });
  }

  window.setTimeout(refresh, 1000);
})();
