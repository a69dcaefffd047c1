"""Web pages for people: Jinja templates rendered server-side from the same service
functions the JSON routes call, and a small script that does the rest through the
JSON API."""
