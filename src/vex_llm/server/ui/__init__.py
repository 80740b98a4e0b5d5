"""The dashboard's page, script and stylesheet, shipped as package data (``server.dashboard``
serves them)."""
