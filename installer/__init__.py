"""Touches the system: the service, the CA and who trusts it, proxy settings and browser policies.

One module per mechanism (``systemd``, ``launchd``, ``windows``, ``trust``, ``routing``,
``policies``), each a ``Step`` of small recorded ops (``ops``) with ``plan()``, ``apply()`` and
``revert()``; ``plan`` picks the steps for this OS and mode, ``doctor`` checks they still hold, and
``ca`` makes the name-constrained CA (the daemon uses it too). Everything takes a ``root``.
"""
