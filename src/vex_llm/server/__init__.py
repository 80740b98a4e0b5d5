"""The OpenAI-compatible caching proxy (``vex-llm serve``); needs the ``[server]`` extra.

``create_app`` lives in :mod:`vex_llm.server.app`; settings, tenants, the wire format and the
metrics each have their own module. This package imports nothing heavy on import.
"""
