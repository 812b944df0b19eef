"""Upstream model endpoints: their settings (:mod:`.config`), shared by ``tela serve``, ``tela collect``
and ``tela judge``. The clients themselves are plugins (``tela plugins list --kind upstream``)."""

from __future__ import annotations

from .config import ConfigError, UpstreamConfig, parse_upstream_flag, read_config_file

__all__ = ["ConfigError", "UpstreamConfig", "parse_upstream_flag", "read_config_file"]
