"""stackferry's lab: two real, independent OpenStack clouds on 127.0.0.1, built from PyPI.

``python -m devcloud up|down|status``. See ``layout.py`` for where
everything lives and which ports each cloud uses.
"""
