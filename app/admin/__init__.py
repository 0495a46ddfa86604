"""The operator's web dashboard under /admin: server-rendered pages, no build step."""
