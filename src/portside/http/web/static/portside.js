// Copy buttons: <button class="copy" data-copy="text">. The only script on the pages; they work without it.
(function () {
  "use strict";
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) { return; }
    var status = button.parentNode.querySelector(".copy-status");
    copy(button.getAttribute("data-copy")).then(function () {
      button.setAttribute("data-copied", "true");
      if (status) { status.textContent = "Copied"; }
    }, function () {
      if (status) { status.textContent = "Copy failed: select the text and copy it"; }
    });
  });
  document.querySelectorAll("button.copy").forEach(function (button) { button.hidden = false; });
})();
