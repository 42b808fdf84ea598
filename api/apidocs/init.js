// Starts Swagger UI on the service's own OpenAPI document. A file of its own, not an inline
// script, so that the docs page runs under a Content-Security-Policy without 'unsafe-inline'.
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
