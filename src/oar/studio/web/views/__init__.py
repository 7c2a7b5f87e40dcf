"""One module per resource; each view reads the caller, calls a service and renders a template."""
