"""tela's command line (click + rich). Each command group lives in its own module."""
