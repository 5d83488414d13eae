"""The web UI: server-rendered pages (Jinja2), small vanilla JS modules for the live parts."""
