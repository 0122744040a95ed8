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
        // An upstream's health: green online, red otherwise.
        if (value != null && node.hasAttribute("data-health")) node.className = String(value).startsWith("online") ? "ok" : "bad";
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
  // What is wrong with an input schema, or "" (the gateway checks it fully on saving).
  function schemaProblem(schema) {
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return "the schema must be a JSON object";
    if (schema.type !== undefined && schema.type !== "object") return "a tool's input schema must have \"type\": \"object\"";
    const props = schema.properties === undefined ? {} : schema.properties;
    if (typeof props !== "object" || props === null || Array.isArray(props)) return "\"properties\" must be an object";
    if (schema.required !== undefined) {
      if (!Array.isArray(schema.required)) return "\"required\" must be a list of argument names";
      const unknown = schema.required.filter(function (name) { return !(name in props); });
      if (unknown.length) return "\"required\" names arguments that are not in \"properties\": " + unknown.join(", ");
    }
    return "";
  }
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      const bad = Array.prototype.find.call(form.querySelectorAll("textarea[data-json]"), function (area) {
        if (!area.value.trim()) return false;
        let parsed;
        try { parsed = JSON.parse(area.value); }
        catch (error) { area.setCustomValidity("Not valid JSON: " + error.message); return true; }
        const problem = area.hasAttribute("data-schema") ? schemaProblem(parsed) : "";
        area.setCustomValidity(problem ? "Not a usable input schema: " + problem : "");
        return problem !== "";
      });
      if (bad) { event.preventDefault(); bad.reportValidity(); }
    });
  });
  // The argument builder: rows of name, type, required and description written into the schema.
  document.querySelectorAll("[data-schema-builder]").forEach(function (builder) {
    const area = document.getElementById(builder.getAttribute("data-schema-builder"));
    const rows = builder.querySelector("[data-rows]");
    const types = ["string", "number", "integer", "boolean", "array", "object"];
    let count = 0;
    function write() {
      const schema = { type: "object", properties: {}, required: [] };
      rows.querySelectorAll(".arg").forEach(function (row) {
        const name = row.querySelector("[data-name]").value.trim();
        if (!name) return;
        const property = { type: row.querySelector("[data-type]").value };
        const description = row.querySelector("[data-description]").value.trim();
        if (description) property.description = description;
        schema.properties[name] = property;
        if (row.querySelector("[data-required]").checked) schema.required.push(name);
      });
      if (!schema.required.length) delete schema.required;
      area.value = JSON.stringify(schema, null, 2);
      area.setCustomValidity("");
    }
    function field(label, input) {
      const wrap = document.createElement("label");
      wrap.textContent = label + " ";
      wrap.appendChild(input);
      input.addEventListener("input", write);
      input.addEventListener("change", write);
      return wrap;
    }
    function addRow(name, property, required) {
      count += 1;
      const row = document.createElement("div");
      row.className = "arg";
      const nameInput = document.createElement("input");
      nameInput.setAttribute("data-name", "");
      nameInput.value = name || "";
      const typeSelect = document.createElement("select");
      typeSelect.setAttribute("data-type", "");
      types.forEach(function (type) { typeSelect.add(new Option(type, type, false, property && property.type === type)); });
      const requiredBox = document.createElement("input");
      requiredBox.type = "checkbox";
      requiredBox.setAttribute("data-required", "");
      requiredBox.checked = !!required;
      const descriptionInput = document.createElement("input");
      descriptionInput.setAttribute("data-description", "");
      descriptionInput.value = (property && property.description) || "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = "Remove argument " + count;
      remove.addEventListener("click", function () { row.remove(); write(); });
      row.append(field("Argument " + count + " name", nameInput), field("Argument " + count + " type", typeSelect),
                 field("Argument " + count + " description", descriptionInput));
      const check = field("Argument " + count + " required", requiredBox);
      check.className = "check";
      row.append(check, remove);
      rows.appendChild(row);
      return nameInput;
    }
    try {
      const existing = area.value.trim() ? JSON.parse(area.value) : {};
      Object.keys(existing.properties || {}).forEach(function (name) {
        addRow(name, existing.properties[name], (existing.required || []).indexOf(name) >= 0);
      });
    } catch (error) { /* the text stays as typed; the check on submit explains */ }
    builder.querySelector("[data-add-property]").addEventListener("click", function () { addRow().focus(); });
    builder.hidden = false;
  });
})();
