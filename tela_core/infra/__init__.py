"""What every stage leans on: errors meant for users (``errors``), atomic writes (``io``), locks
(``locks``), progress bars (``progress``) and the deprecation policy's shims (``deprecation``)."""
