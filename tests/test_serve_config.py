"""`tela serve` settings: flags, YAML/TOML files, and one-line errors naming the file and key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import train_length_router

from tela_core.serve.config import ConfigError, ServeConfig, build_config


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_length_router(tmp_path_factory.mktemp("cfg") / "len")


def test_flags_build_routers_and_upstreams(router_dir):
    cfg = build_config(
        routers=[str(router_dir), f"other={router_dir}"],
        weak="http://127.0.0.1:8001/v1#small",
        strong="https://api.example.com/v1#big",
        overrides={"port": 9000, "upstream_timeout": 3.0, "workers": None},
    )
    assert list(cfg.routers) == ["len", "other"] and cfg.port == 9000 and cfg.workers == 1
    assert cfg.routers["len"].upstreams == ["small", "big"] and cfg.routers["len"].path == str(router_dir.resolve())
    assert cfg.upstreams["big"].client_options() == {"base_url": "https://api.example.com/v1", "timeout": 3.0}
    assert cfg.upstreams["big"].model == "big"
    assert ServeConfig.model_validate_json(cfg.to_env()) == cfg  # what --workers hands to each process


def test_yaml_and_toml_files(tmp_path, router_dir, monkeypatch):
    monkeypatch.setenv("MY_KEYS", "k1, k2")
    y = tmp_path / "serve.yaml"
    y.write_text(
        f"routers:\n  knn: {{path: {router_dir}, upstreams: [a, b]}}\n"
        "upstreams:\n  a: {base_url: 'http://127.0.0.1:1/v1', model: m-a, price_input: 0.5, price_output: 1.5}\n"
        "  b: {base_url: 'http://127.0.0.1:2/v1', api_key_env: HOME, timeout: 5}\n"
        "keys: [k0]\nkeys_env: MY_KEYS\nfallback: false\nrouting: conversation\nsticky-header: x-session\n"
    )
    cfg = build_config(y)
    assert cfg.client_keys() == ["k0", "k1", "k2"] and cfg.fallback is False and cfg.routing == "conversation"
    assert cfg.upstreams["a"].price_input == 0.5 and cfg.upstreams["b"].client_options()["timeout"] == 5
    assert cfg.sticky_header == "x-session" and cfg.source == str(y)
    t = tmp_path / "serve.toml"
    t.write_text(
        '[routers.knn]\npath = "rel"\nupstreams = ["a", "b"]\n'
        '[upstreams.a]\nbase_url = "http://127.0.0.1:1/v1"\n[upstreams.b]\nbase_url = "http://127.0.0.1:2/v1"\n'
    )
    (tmp_path / "rel").symlink_to(router_dir)
    cfg = build_config(t)
    # relative to the file; a symbolic link stays one, so a hot reload reads where it points then
    assert cfg.routers["knn"].path == str(tmp_path / "rel")


@pytest.mark.parametrize(
    "text, where",
    [
        (
            "upstreams:\n  a: {base_url: 'http://x/v1', timeout: -1}\n",
            "upstreams.a: timeout: Input should be greater than 0",
        ),
        (
            "upstreams:\n  a: {base_url: 'http://x/v1', bogus: 1}\n",
            "upstreams.a: bogus: Extra inputs are not permitted",
        ),
        ("upstreams:\n  a: {model: m}\n", "upstreams.a: base_url: Field required"),
        (
            "upstreams:\n  a: {type: carrier-pigeon, base_url: 'http://x/v1'}\n",
            "upstreams.a.type: unknown upstream 'carrier-pigeon'; registered upstreams: ",
        ),
        (
            "upstreams:\n  a: {base_url: 'http://x/v1', price_input: -2}\n",
            "upstreams.a.price_input: Input should be greater than or equal to 0",
        ),
        (
            "routers:\n  r: {path: /no/such/router}\nupstreams: {}\n",
            "routers.r.path: /no/such/router: router directory not found",
        ),
        (
            "routers:\n  r: {path: ROUTER, upstreams: [x, y]}\nupstreams:\n  x: {base_url: 'http://x/v1'}\n",
            "routers.r.upstreams: no upstream named 'y'; upstreams: x",
        ),
        (
            "port: 99999\nupstreams:\n  a: {base_url: 'http://x/v1'}\n",
            "port: Input should be less than or equal to 65535",
        ),
        (
            "routing: everything\nupstreams:\n  a: {base_url: 'http://x/v1'}\n",
            "routing: Input should be 'last-user' or 'conversation'",
        ),
        (
            "keys_env: TELA_NO_SUCH_VAR\nupstreams:\n  a: {base_url: 'http://x/v1'}\n",
            "keys_env: environment variable TELA_NO_SUCH_VAR is not set",
        ),
        ("workers: 0\n", "workers: Input should be greater than or equal to 1"),
        ("routers: [1, 2\n", ":2: not valid YAML: expected ',' or ']'"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(tmp_path, router_dir, text, where, tela_cli):
    f = tmp_path / "serve.yaml"
    f.write_text(text.replace("ROUTER", str(router_dir)))
    res = tela_cli("serve", "--config", f, "--check")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"Error: {f}:") and where in line, line


def test_router_models_without_upstreams_is_a_config_error(tmp_path, router_dir, tela_cli):
    f = tmp_path / "serve.yaml"
    f.write_text(f"routers:\n  r: {{path: {router_dir}}}\nupstreams:\n  a: {{base_url: 'http://x/v1'}}\n")
    res = tela_cli("serve", "--config", f, "--check")
    assert (
        res.exit_code == 2
        and f"Error: {f}: routers.r.upstreams: the router routes between mistralai/Mixtral-8x7B-Instruct-v0.1"
        in res.output
    )
    f.write_text(
        f"routers:\n  r: {{path: {router_dir}, upstreams: [a]}}\nupstreams:\n  a: {{base_url: 'http://x/v1'}}\n"
    )
    res = tela_cli("serve", "--config", f, "--check")
    assert res.exit_code == 2 and "routers.r.upstreams: the router routes between 2 models" in res.output


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--weak", "http://x/v1#a"], "--weak and --strong go together"),
        (["--weak", "http://x/v1", "--strong", "http://y/v1#b"], "--weak: expected URL#MODEL"),
        (["--weak", "ftp://x#a", "--strong", "http://y/v1#b"], "--weak: the URL must start with http:// or https://"),
        ([], "nothing to serve"),
    ],
)
def test_flag_errors(router_dir, args, msg, tela_cli):
    res = tela_cli("serve", "--check", *args)
    assert res.exit_code == 2 and msg in res.output and res.output.count("\n") == 1, res.output


def test_check_loads_the_routers(router_dir, tela_cli):
    res = tela_cli(
        "serve",
        "--check",
        "--router",
        f"r={router_dir}",
        "--weak",
        "http://127.0.0.1:1/v1#small",
        "--strong",
        "http://127.0.0.1:2/v1#big",
    )
    assert res.exit_code == 0, res.output
    assert "router-r:" in res.output and "-> small < big" in res.output


def test_config_error_type():
    with pytest.raises(ConfigError):
        build_config()
