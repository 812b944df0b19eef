"""What every stage leans on: errors meant for users (``errors``), atomic writes (``io``), locks
(``locks``), progress bars (``progress``), the append-only JSONL logs ``tela serve`` writes and every
layer reads (``logfile``) and the deprecation policy's shims (``deprecation``)."""
