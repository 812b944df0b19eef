"""tela's builtin plugins, one subpackage each, found through the ``tela`` entry-point group exactly
like a third party's (``pyproject.toml``: ``[project.entry-points.tela]``)."""
