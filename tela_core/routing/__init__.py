"""Routers: the Router API (``router``), the router folder and its manifest (``artifact``), the family
SDK for trainable families (``family``, ``probe``) and what "the strong model is needed" means
(``targets``: training targets and the weak/strong pair)."""
