"""The catalogue of public router datasets that ``tela data get`` fetches: the entry a plugin
registers through the ``tela_register_datasets`` hook (:class:`DatasetEntry`, one
:class:`RemoteFile` per file) and its check. Their public home; they are defined in
:mod:`tela_core.schema.datasets`, below the plugin registry that validates each entry."""

from __future__ import annotations

from tela_core.schema.datasets import DatasetEntry, RemoteFile, validate_entry

__all__ = ["RemoteFile", "DatasetEntry", "validate_entry"]
