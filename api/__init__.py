"""The API and the duty-desk page."""
