"""Benchmarks of owlclaw-scheduler, run as ``python -m benchmarks [names] [--quick] [--out PATH]``.

One module per benchmark group; each exposes ``NAME``, ``TITLE``, ``NEEDS_ENGINE``,
a ``Sizes`` dataclass with ``DEFAULT`` and ``QUICK`` instances, and
``run(sizes, env) -> Result``. ``report`` writes the tables and the Markdown.
"""
