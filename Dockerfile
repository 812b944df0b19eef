# tela's serving install in a container: `tela serve` and what every non-LM router needs at
# inference (length, random, prompt-features, and the embedding families with a static embedder),
# without torch, transformers or scikit-learn (docs/deployment.md#a-serving-install).
#
#   docker build -t tela-serve .
#   docker run --rm -p 8000:8000 -v "$PWD/deploy:/srv/tela:ro" tela-serve
#
# /srv/tela holds serve.yaml and the router folders it names (relative router paths are read from
# the file's folder); nothing is downloaded at run time. Flags after the image name replace
# `--config /srv/tela/serve.yaml`, e.g.
#   docker run ... tela-serve --router knn=/srv/tela/knn --weak URL#NAME --strong URL#NAME
# LM routers (score-token, lm-probe, encoder) and routers that embed with MiniLM on torch need the
# training stack (tela[train,zoo,models]): not this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/tela-src
COPY pyproject.toml README.md constraints.txt ./
COPY tela_core ./tela_core
COPY plugins ./plugins
RUN pip install -c constraints.txt '.[serve]' && cd / && rm -rf /tmp/tela-src

ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TELA_CACHE=/srv/tela/cache
RUN useradd --system --uid 10001 --no-create-home tela
USER tela
WORKDIR /srv/tela
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
ENTRYPOINT ["tela", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--config", "/srv/tela/serve.yaml"]
