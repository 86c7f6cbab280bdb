"""The xpi dashboard: static files (no CDN, nothing fetched from the internet) and `xpi dashboard`, a
local signing proxy that serves them and signs their API calls with the operator's credentials."""
