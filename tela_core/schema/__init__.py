"""The types every layer passes around, below everything that makes or reads them: the routing
record (``records``: :class:`Record`, :class:`Message`), the dataset catalogue's entry
(``datasets``) and a node's place in a multi-node run (``launch``: ``NodeLaunch``). Their public
homes re-export them: ``tela_core.Record`` and ``tela_core.data.records.Record`` are the same class,
as ``tela_core.data.catalogue.DatasetEntry`` and ``tela_core.train.multinode.NodeLaunch``."""
