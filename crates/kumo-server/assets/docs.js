// Starts Swagger UI on this server's OpenAPI document. A file of its own
// because the page's Content-Security-Policy allows no inline script.
// Paths are relative to /docs, so the page also works behind a path prefix.
"use strict";
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  // The default sends the document to validator.swagger.io.
  validatorUrl: null,
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  filter: true,
  tryItOutEnabled: false,
});
