"""The test kit for tela and its plugins: a tiny real model and router built offline, the CLI run
in-process, in-process plugin registration (``helpers``) and the pytest fixtures every package gets
when tela is installed (``pytest_plugin``, declared as a ``pytest11`` entry point).

Called ``tela_core.testing`` before 0.2; that name still works, with a deprecation warning.
"""

from __future__ import annotations

from tela_core.testkit.helpers import *  # noqa: F401,F403 -- the kit's public names
from tela_core.testkit.helpers import __all__ as __all__  # noqa: F401
