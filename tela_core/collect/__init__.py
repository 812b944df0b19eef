"""Paid calls to upstream models: ``tela collect`` (each model's answer to each prompt) and the calls
``tela judge`` makes to a judge model.

- :mod:`.calls`: the engine (endpoints, calls, replies, retries, timeouts, the budget check);
- :mod:`.limits`: calls in flight, requests and tokens per minute, per upstream;
- :mod:`.retry`: which failures are retried, backoff with jitter, ``Retry-After``;
- :mod:`.budget`: prices, token estimates, the cost estimate and ``--max-cost``;
- :mod:`.endpoints`: which models to call, from ``--model`` flags and ``tela serve``'s config file,
  the engine built from the paid-call settings, and the check of each model before any work;
- :mod:`.store`: the locked output folder, its journal and atomic final files (resume after a kill);
- :mod:`.inputs`: prompt rows (data sources, prompt files, ``tela serve``'s logs) and the answers file;
- :mod:`.answers`: collecting answers (judging them is :mod:`tela_core.judging`);
- :mod:`.job`: the whole of ``tela collect`` for a script: :func:`~.job.prompt_rows` and
  :class:`~.job.CollectJob` (plan, estimate, run into a resumable output folder, summary).

Nothing here imports aiohttp (the ``openai`` upstream plugin does, when a client is made).
"""
