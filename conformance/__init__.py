"""Conformance suite of the rocksds format: vectors, their generator, a runner, and a second reader.

See README.md in this folder. Nothing here is part of the ``rocksds`` package;
``second_reader`` does not even import it.
"""
