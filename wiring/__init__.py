"""The composition root: typed builders of every store, breaker, client and model.

Shared by the worker profiles (workers/) and the API (api/state.py); the only code
outside ``pipeline/adapters/`` that names an adapter. Builders take the settings and
endpoints and return ports (pipeline.ports), so a caller never learns which driver is
behind one.

Must not import: api/, workers/, cli/.
"""
