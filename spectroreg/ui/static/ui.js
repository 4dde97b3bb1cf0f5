// spectroreg's pages: a copy button beside each digest and pull command.
// Loaded as a file of ours (CSP script-src 'self'); the pages work without it.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  var area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  return Promise.resolve();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy]").forEach(function (element) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "copy";
    button.title = "Copy " + element.getAttribute("data-copy");
    button.addEventListener("click", function () {
      copyText(element.getAttribute("data-copy")).then(function () {
        button.textContent = "copied";
        button.classList.add("done");
        setTimeout(function () { button.textContent = "copy"; button.classList.remove("done"); }, 1500);
      });
    });
    element.appendChild(button);
  });
  var filter = document.getElementById("q");
  if (filter && !filter.value) { filter.focus(); }
});
