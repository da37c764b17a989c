// Starts Swagger UI on tako's own OpenAPI document. Served from
// /docs/tako-docs.js so the page needs no inline script.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    // No validator badge: it would send the document to a third party.
    validatorUrl: null,
  });
});
