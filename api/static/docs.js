// Starts Swagger UI on /api/v1/docs. A file of its own: the page's CSP allows no inline script.
// BaseLayout needs no preset and fetches nothing but openapi.json (validatorUrl: null turns
// off the badge that would ask validator.swagger.io).
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");

  // A problem's `type` links to #problem-<code> below the reference: scroll there again once
  // Swagger UI has rendered above it and pushed the row down.
  function showLinkedProblem() {
    const target = location.hash.startsWith("#problem-")
      ? document.getElementById(location.hash.slice(1))
      : null;
    if (target) target.scrollIntoView();
  }

  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    layout: "BaseLayout",
    validatorUrl: null,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    onComplete: showLinkedProblem,
  });
})();
