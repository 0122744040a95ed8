// mcpgate console: live figures over SSE and JSON checks before submitting; the pages work
// without this script.
(function () {
  "use strict";
  const live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    const samples = {};
    const source = new EventSource(live.getAttribute("data-live"));
    source.addEventListener("figures", function (event) {
      const figures = JSON.parse(event.data);
      document.querySelectorAll("[data-figure]").forEach(function (node) {
        const value = node.getAttribute("data-figure").split(".").reduce(function (v, k) { return v == null ? v : v[k]; }, figures);
        if (value != null) node.textContent = value;
      });
      document.querySelectorAll("[data-chart]").forEach(function (svg) {
        const key = svg.getAttribute("data-chart");
        const value = Number(key.split(".").reduce(function (v, k) { return v == null ? v : v[k]; }, figures)) || 0;
        const series = (samples[key] = (samples[key] || []).concat([value]).slice(-30));
        const top = Math.max.apply(null, series.concat([1]));
        const points = series.map(function (v, i) { return (i * 300 / 29).toFixed(1) + "," + (58 - (v / top) * 56).toFixed(1); });
        svg.querySelector("polyline").setAttribute("points", points.join(" "));
      });
      live.setAttribute("data-updated", String(Date.now()));
    });
  }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      const field = document.querySelector(button.getAttribute("data-copy"));
      field.select();
      if (navigator.clipboard) navigator.clipboard.writeText(field.value).catch(function () {});
      button.textContent = "Copied";
    });
  });
  document.querySelectorAll("textarea[data-json]").forEach(function (area) {
    area.addEventListener("input", function () { area.setCustomValidity(""); });
  });
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      const bad = Array.prototype.find.call(form.querySelectorAll("textarea[data-json]"), function (area) {
        if (!area.value.trim()) return false;
        try { JSON.parse(area.value); area.setCustomValidity(""); return false; }
        catch (error) { area.setCustomValidity("Not valid JSON: " + error.message); return true; }
      });
      if (bad) { event.preventDefault(); bad.reportValidity(); }
    });
  });
})();
