"""``tela data get`` / ``tela data list`` and :mod:`tela_core.data.download`, against a loopback HTTP server.

Stand-in: the real origins (GitHub, the Hugging Face hub) cannot be reached from the test machine,
so each test starts an ``http.server`` on 127.0.0.1 that serves fixture files in the datasets' real
schemas, with ``Range`` support, and can cut a transfer short or ignore ranges. The catalogue
entries the tests fetch are registered through the real ``tela_register_datasets`` hook.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tela_core import hookimpl
from tela_core.data.catalogue import DatasetEntry, RemoteFile
from tela_core.data.download import MANIFEST, datasets_dir
from tela_core.plugins.discovery import get_registry
from tela_core.testkit.helpers import TelaCli, one_error_line, registered_plugin

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"

# RouteLLM's MMLU outcome CSV schema: prompt, then one True/False column per model
MMLU_CSV = (
    f"prompt,{WEAK},{STRONG}\n"
    + "".join(f'"Question {i}?\nA. yes\nB. no",{i % 2 == 0},{i % 3 != 0}\n' for i in range(400))
).encode()
CONTAMINATED = b'{"eval_prompt": "Question 3?\\nA. yes\\nB. no"}\n'
# the Arena 55k schema (train.csv)
ARENA_CSV = (
    b"id,model_a,model_b,prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie\n"
    b'1,gpt-4-1106-preview,mixtral-8x7b-instruct-v0.1,"[""Hi?""]","[""Hello""]","[""Hey""]",1,0,0\n'
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    fail_after: dict[str, int]  # path -> bytes sent before the connection is cut
    ignore_range: bool
    slow: bool  # send the body in small pieces with pauses
    requests: list[tuple[str, str | None]]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("X-Repo-Commit", "c0ffee" * 6 + "beef")
        self.end_headers()
        cut = srv.fail_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the server dies mid-file
            return
        if srv.slow:
            import time

            for i in range(0, len(chunk), 2048):
                self.wfile.write(chunk[i : i + 2048])
                self.wfile.flush()
                time.sleep(0.01)
            return
        self.wfile.write(chunk)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.files, srv.fail_after, srv.ignore_range, srv.slow, srv.requests = {}, {}, False, False, []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


pytestmark = pytest.mark.usefixtures("isolated_cache")  # every download lands in a cache of its own


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def mmlu_entry(srv: Server, **over: Any) -> DatasetEntry:
    """A two-file entry shaped like the real routellm-mmlu one, served by ``srv``."""
    srv.files["/lm-sys/RouteLLM/abc/mmlu_anatomy.csv"] = MMLU_CSV
    srv.files["/lm-sys/RouteLLM/abc/contaminated_prompts.jsonl"] = CONTAMINATED
    files = (
        RemoteFile("mmlu_anatomy.csv", url(srv, "/lm-sys/RouteLLM/abc/mmlu_anatomy.csv"), sha(MMLU_CSV), len(MMLU_CSV)),
        RemoteFile(
            "contaminated_prompts.jsonl", url(srv, "/lm-sys/RouteLLM/abc/contaminated_prompts.jsonl"), sha(CONTAMINATED)
        ),
    )
    base = dict(
        name="test-mmlu",
        description="fixture MMLU outcomes",
        origin="https://example.org/RouteLLM",
        license="Apache-2.0",
        revision="abc",
        files=files,
        source="routellm-csv",
    )
    base.update(over)
    return DatasetEntry(**base)


@contextmanager
def catalogued(*entries: DatasetEntry) -> Iterator[Any]:
    mod = types.ModuleType("test_catalogue")

    @hookimpl
    def tela_register_datasets(register: Any) -> None:
        for e in entries:
            register(e)

    mod.tela_register_datasets = tela_register_datasets
    with registered_plugin(mod, "test-catalogue") as registry:
        yield registry


# ------------------------------------------------------------------------------------------------


def test_hook_tela_register_datasets(server: Server, tela_cli: TelaCli) -> None:
    entry = mmlu_entry(server)
    with catalogued(entry) as reg:
        assert reg.dataset("test-mmlu") is entry
        assert ("dataset", "test-mmlu") in reg.plugins["test-catalogue"].components
        listed = {d["name"]: d for d in json.loads(tela_cli("data", "list", "--json").output)}
        assert listed["test-mmlu"]["files"][0]["sha256"] == sha(MMLU_CSV)
        assert listed["test-mmlu"]["in_cache"] is False
        # the builtin catalogue is there too, every entry with a license and its files
        for name in ("routellm-mmlu", "routellm-judge", "arena-55k", "llmrouter", "routerarena", "routerbench"):
            assert listed[name]["license"] and listed[name]["files"], name
    bad = DatasetEntry(name="Bad Name", description="", origin="", license="", revision=None, files=())
    with catalogued(bad) as reg:
        assert "dataset name 'Bad Name'" in (reg.plugins["test-catalogue"].error or "")


def test_builtin_entries_pin_github_files_to_verified_checksums() -> None:
    reg = get_registry()
    mmlu = reg.dataset("routellm-mmlu")
    assert len(mmlu.files) == 58 and all(
        f.sha256 and "0b64fdafe049e596a3f5657c219329f24af24198" in f.url for f in mmlu.files
    )
    for name in ("llmrouter", "routerarena"):
        assert all(f.sha256 for f in reg.dataset(name).files), name
    for name in ("routellm-judge", "arena-55k", "routerbench"):  # unverifiable from here: said so, not invented
        assert all(f.sha256 is None for f in reg.dataset(name).files), name


def test_complete_download_verifies_and_prints_license_and_path(server: Server, tela_cli: TelaCli) -> None:
    with catalogued(mmlu_entry(server)):
        result = tela_cli("data", "get", "test-mmlu")
        assert result.exit_code == 0, result.output
        path = Path(result.stdout.strip().splitlines()[-1])
        assert path == datasets_dir() / "test-mmlu"
        assert (path / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV
        assert "license: Apache-2.0" in result.output and "sha256 verified" in result.output
        manifest = json.loads((path / MANIFEST).read_text())
        assert manifest["files"]["mmlu_anatomy.csv"]["sha256"] == sha(MMLU_CSV)
        assert manifest["revision"] == "abc" and manifest["resolved_revision"] == "c0ffee" * 6 + "beef"
        # the data reads with the source the entry names, contaminated prompt dropped
        check = tela_cli("data", "check", path, "--json")
        assert check.exit_code == 0, check.output
        assert json.loads(check.output)["records"] == 399
        # a second get fetches nothing
        n = len(server.requests)
        again = tela_cli("data", "get", "test-mmlu")
        assert again.exit_code == 0 and "already in the cache" in again.output and len(server.requests) == n


def test_server_failing_mid_file_keeps_the_part_and_a_rerun_resumes_with_range(
    server: Server, tela_cli: TelaCli
) -> None:
    entry = mmlu_entry(server)
    path = "/lm-sys/RouteLLM/abc/mmlu_anatomy.csv"
    server.fail_after[path] = 1000
    with catalogued(entry):
        line = one_error_line(tela_cli("data", "get", "test-mmlu"))
        assert "stopped after 1,000 of" in line and "run the same command again to resume" in line
        assert not (datasets_dir() / "test-mmlu").exists()
        part = datasets_dir() / ".incoming" / "test-mmlu" / "mmlu_anatomy.csv.part"
        assert part.stat().st_size == 1000
        result = tela_cli("data", "get", "test-mmlu")
        assert result.exit_code == 0, result.output
    assert (path, "bytes=1000-") in server.requests
    assert (datasets_dir() / "test-mmlu" / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV
    assert not (datasets_dir() / ".incoming" / "test-mmlu").exists()


def test_a_server_that_ignores_range_restarts_the_file(server: Server, tela_cli: TelaCli) -> None:
    entry = mmlu_entry(server)
    part = datasets_dir() / ".incoming" / "test-mmlu" / "mmlu_anatomy.csv.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that is not the start of the file")
    server.ignore_range = True
    with catalogued(entry):
        assert tela_cli("data", "get", "test-mmlu").exit_code == 0
    assert (datasets_dir() / "test-mmlu" / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV


def test_checksum_mismatch_is_refused_and_leaves_nothing(server: Server, tela_cli: TelaCli) -> None:
    entry = mmlu_entry(server)
    wrong = RemoteFile(entry.files[1].path, entry.files[1].url, "0" * 64)
    bad = mmlu_entry(server, files=(entry.files[0], wrong))
    with catalogued(bad):
        line = one_error_line(tela_cli("data", "get", "test-mmlu"))
    assert "contaminated_prompts.jsonl has sha256" in line and "nothing was kept" in line
    assert not (datasets_dir() / "test-mmlu").exists()
    assert not (datasets_dir() / ".incoming" / "test-mmlu").exists()


def test_unknown_checksum_is_recorded_on_first_download(server: Server, tela_cli: TelaCli) -> None:
    server.files["/lmsys/train.csv"] = ARENA_CSV
    entry = DatasetEntry(
        name="test-arena",
        description="",
        origin="https://example.org/arena",
        license="Apache-2.0",
        revision=None,
        files=(RemoteFile("train.csv", url(server, "/lmsys/train.csv")),),
        source="arena",
        data="train.csv",
    )
    with catalogued(entry):
        result = tela_cli("data", "get", "test-arena")
    assert result.exit_code == 0, result.output
    assert "no published checksum; recorded sha256 " + sha(ARENA_CSV) in result.output
    assert result.stdout.strip().splitlines()[-1].endswith("train.csv")
    manifest = json.loads((datasets_dir() / "test-arena" / MANIFEST).read_text())
    assert manifest["files"]["train.csv"]["sha256"] == sha(ARENA_CSV)
    assert manifest["files"]["train.csv"]["checksum"].startswith("recorded on first download")


def test_without_network_one_line_says_what_to_fetch_and_from_dir_works(
    server: Server, tmp_path: Path, tela_cli: TelaCli
) -> None:
    entry = mmlu_entry(server)
    with socket.socket() as s:  # a port nobody listens on: the "no network" of this machine
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    offline = mmlu_entry(
        server,
        files=tuple(
            RemoteFile(f.path, f.url.replace(f":{server.server_address[1]}/", f":{dead}/"), f.sha256)
            for f in entry.files
        ),
    )
    with catalogued(offline):
        line = one_error_line(tela_cli("data", "get", "test-mmlu"))
        assert "cannot reach" in line and "--from DIR" in line and "tela data get test-mmlu --from DIR" in line
        assert not (datasets_dir() / ".incoming" / "test-mmlu").exists()
        hand = tmp_path / "by-hand"
        hand.mkdir()
        (hand / "mmlu_anatomy.csv").write_bytes(MMLU_CSV)
        (hand / "contaminated_prompts.jsonl").write_bytes(CONTAMINATED)
        result = tela_cli("data", "get", "test-mmlu", "--from", hand)
        assert result.exit_code == 0, result.output
        assert (datasets_dir() / "test-mmlu" / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV
        (hand / "contaminated_prompts.jsonl").write_bytes(b"tampered\n")
        line = one_error_line(tela_cli("data", "get", "test-mmlu", "--from", hand, "--force"))
        assert "nothing was kept" in line
        assert (datasets_dir() / "test-mmlu" / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV  # old copy untouched


def test_hub_urls_are_not_fetched_when_hf_hub_offline(monkeypatch: pytest.MonkeyPatch, tela_cli: TelaCli) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = one_error_line(tela_cli("data", "get", "routellm-judge"))
    assert "HF_HUB_OFFLINE" in line and "--from DIR" in line


def test_unknown_dataset_lists_the_catalogue(tela_cli) -> None:
    line = one_error_line(tela_cli("data", "get", "no-such-data"))
    assert "unknown dataset 'no-such-data'" in line and "routellm-mmlu" in line


def test_two_gets_at_once_fetch_once(server: Server) -> None:
    """A second `get` of the same dataset waits for the first (a lock), then finds it complete."""
    from tela_core.data.download import fetch

    entry = mmlu_entry(server)
    server.slow = True
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(fetch(entry))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.fetched for r in results) == [False, True]
    assert [p for p, _ in server.requests].count("/lm-sys/RouteLLM/abc/mmlu_anatomy.csv") == 1
    assert (datasets_dir() / "test-mmlu" / "mmlu_anatomy.csv").read_bytes() == MMLU_CSV
