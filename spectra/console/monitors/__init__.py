"""The console's monitors area: the overview at `/console` (every monitor the viewer may see, grouped,
filtered, counted, open incidents first, kept live by Server-Sent Events from `/console/events`), the
monitor page at `/console/monitors/{namespace}/{name}` (state per location, uptime, a response-time
chart drawn on the server, recent checks, certificate expiry, incident history, the resource as YAML
with its source), and their JSON twins under `/api/v1/monitors/...`.

- `service.py`: the queries (blocking, no HTTP): the overview, one monitor's facts, its checks and latency.
- `hub.py`: one hub per web process that reads state changes from the store every half second and fans them
  out to the connected overviews, each filtered by what its viewer may see.
- `chart.py`: the response-time chart as SVG (with a title, axes labels and a table alternative).
- `views.py`, `api.py`, `models.py`: the pages, the JSON endpoints and their pydantic models.
"""
