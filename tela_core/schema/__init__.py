"""The types every layer passes around, below everything that makes or reads them: the routing
record (``records``: :class:`Record`, :class:`Message`) and the dataset catalogue's entry
(``datasets``). Their public homes re-export them: ``tela_core.Record`` and
``tela_core.data.records.Record`` are the same class, as ``tela_core.data.catalogue.DatasetEntry``."""
