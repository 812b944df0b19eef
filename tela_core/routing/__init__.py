"""Routers: the Router API (``router``), the router folder and its manifest (``artifact``), the family
SDK for trainable families (``family``, ``probe``), what "the strong model is needed" means
(``targets``: training targets and the weak/strong pair) and how well a routing does (``metrics``:
APGR, CPT and the quality curve, which the operating point is chosen by)."""
