"""Router versions, `tela promote` and `tela rollback` (issue 29 items 2 and 3).

Two embedding-knn routers (default embedder) trained on half of the bundled MMLU sample with
made-up labels that make routing learnable: the weak model fails every law, maths, physics,
chemistry and accounting question and the strong one answers everything. ``good`` learns those
labels; ``bad`` learns them flipped. The other half of the sample, labelled the same way, is the
"recent traffic" neither router trained on.

The replica test runs two real `tela serve` processes on loopback serving the versions folder;
their upstreams are STAND-INS for remote model APIs (serve_support.EchoStandIn, in this process).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tela_core.infra.errors import TelaError
from tela_core.routing import versions as vs
from tela_core.testkit.helpers import needs_public_data, one_error_line, public_data, run_cli

SAMPLE = Path(__file__).resolve().parents[1] / "tela_core" / "data" / "mmlu_sample.jsonl"
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
TOKEN = "promote-test-token"


def _hard(group: str) -> bool:
    return any(k in group for k in ("law", "math", "physics", "chemistry", "accounting"))


def _write(path: Path, rows: list[dict[str, Any]], flip: bool = False) -> Path:
    from tela_core.data.labels import OutcomeOptions, label_for
    from tela_core.data.records import seed_record

    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            out = {WEAK: 0.0 if _hard(r["group"]) != flip else 1.0, STRONG: 1.0}
            label = label_for(out[WEAK], out[STRONG], OutcomeOptions.model_validate({}))
            rec = seed_record(r["prompt"], label, outcomes=out, costs={WEAK: 0.001, STRONG: 0.01}, id=r["id"])
            f.write(json.dumps(rec.to_json()) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("promote")
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    paths = {
        "train": _write(root / "train.jsonl", rows[0::2]),
        "train_flip": _write(root / "train_flip.jsonl", rows[0::2], flip=True),
        "traffic": _write(root / "traffic.jsonl", rows[1::2]),
        "root": root,
    }
    for name, data in (("good", "train"), ("bad", "train_flip")):
        res = run_cli("run", "--family", "embedding-knn", "--data", paths[data], "--output", root / name, "--quiet")
        assert res.exit_code == 0, res.output
        paths[name] = root / name
    return paths


def test_versions_folder_round_trip(trained: dict[str, Path], tmp_path: Path) -> None:
    from tela_core import Router
    from tela_core.routing.artifact import read_manifest

    live = tmp_path / "live"
    vs.init(live)
    assert vs.read_state(live).current is None
    with pytest.raises(TelaError, match="no current version yet"):
        Router.load(live)
    v1 = vs.add_version(live, trained["good"])
    v2 = vs.add_version(live, trained["bad"])
    assert (v1, v2) == ("v1", "v2") and vs.versions(live) == ["v1", "v2"]
    vs.set_current(live, v1, "promote")
    vs.set_current(live, v2, "promote", record="records/x.json")
    state = vs.read_state(live)
    assert state.current == "v2" and state.earlier == ["v1"]
    assert [(h["action"], h["from"], h["to"]) for h in state.history] == [
        ("promote", None, "v1"),
        ("promote", "v1", "v2"),
    ]
    r = Router.load(live)  # a versions folder loads its current version, named after the folder
    assert r.version_name == "v2" and r.name == "live" and r.path == live / "v2"
    assert r.decide(["What is 2 + 2?"])[0].version_name == "v2"
    with pytest.raises(TelaError, match="a folder of router versions .*: name one of its versions; the current one is"):
        read_manifest(live)  # tela eval, tela calibrate: a version, not the folder
    vs.set_current(live, "v1", "rollback")
    assert vs.resolve(live) == (live / "v1", "v1") and vs.read_state(live).earlier == []
    with pytest.raises(TelaError, match="not the version before"):
        vs.set_current(live, "v2", "rollback")
    first = vs.next_record_path(live, "promote", "v1")
    vs.write_record(first, {"n": 1})
    vs.write_record(vs.next_record_path(live, "promote", "v2"), {"n": 2})
    first.unlink()  # a removed record: the next one is still numbered after the last
    assert vs.next_record_path(live, "rollback", "v1").name == "0003-rollback-v1.json"
    (live / vs.VERSIONS_FILE).write_text('{"tela_versions": 1, "current": "../etc"}')
    with pytest.raises(TelaError, match="versions.json: 'current' must be a version name"):
        vs.read_state(live)


def test_a_candidate_that_trained_on_the_traffic_is_bad_input(trained: dict[str, Path], tmp_path: Path) -> None:
    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["bad"]).exit_code == 0
    before = (live / vs.VERSIONS_FILE).read_text()
    res = run_cli("promote", "--router", live, "--candidate", trained["good"], "--data", trained["train"])
    line = one_error_line(res)
    assert "200 of the 200 evaluation prompts are the candidate router's own training prompts" in line
    assert (live / vs.VERSIONS_FILE).read_text() == before and vs.versions(live) == ["v1"]


def test_train_config_trains_the_candidate_and_dry_run_changes_nothing(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["bad"]).exit_code == 0
    before = (live / vs.VERSIONS_FILE).read_text()
    config = tmp_path / "run.yaml"
    config.write_text(f"family: embedding-knn\ndata: {trained['train']}\n", encoding="utf-8")
    cand = tmp_path / "cand"
    res = run_cli(
        "promote", "--router", live, "--candidate", cand, "--train-config", config,
        "--data", trained["traffic"], "--dry-run",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "would promote (dry run, nothing changed): better beyond the interval" in res.output
    assert (cand / "tela.json").is_file()
    assert (live / vs.VERSIONS_FILE).read_text() == before and not (live / "records" / "0002-promote-v2.json").exists()


def test_hand_edited_versions_folders_never_load_from_outside(trained: dict[str, Path], tmp_path: Path) -> None:
    from tela_core import Router

    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["bad"]).exit_code == 0
    good = vs.read_state(live)
    (live / vs.VERSIONS_FILE).write_text('{"tela_versions": 1, "current": "v1\\n"}')  # "$" matched before "\n"
    with pytest.raises(TelaError, match="'current' must be a version name such as v1, got 'v1\\\\n'"):
        Router.load(live)
    # a version that is a link to a router elsewhere: refused, not followed out of the folder
    (live / "v2").symlink_to(trained["good"], target_is_directory=True)
    (live / vs.VERSIONS_FILE).write_text(json.dumps({**good.to_json(), "current": "v2", "earlier": ["v1"]}))
    with pytest.raises(TelaError, match=r"current version v2 is a link \(.*\), not a folder of its own"):
        Router.load(live)
    (live / "v2").unlink()
    (live / "v2").write_text("not a version")  # a stray file with a version's name: numbered after it
    assert vs.add_version(live, trained["good"]) == "v3"
    # the folder through a link is the same folder: one lock, so no two writers at once
    link = tmp_path / "live-link"
    link.symlink_to(live, target_is_directory=True)
    with vs.versions_lock(live):
        assert "is in use by pid" in one_error_line(run_cli("rollback", "--router", link))
    # a rollback to a version whose folder is gone: bad input, and no record, nothing changed
    (live / vs.VERSIONS_FILE).write_text(json.dumps({**good.to_json(), "current": "v3", "earlier": ["v2"]}))
    before = (live / vs.VERSIONS_FILE).read_text()
    line = one_error_line(run_cli("rollback", "--router", live))
    assert "the version before v3, v2 has no folder" in line
    assert (live / vs.VERSIONS_FILE).read_text() == before and not list((live / "records").glob("*-rollback-*"))
    # a first version that does not load (a file of its family missing): bad input, no folder made
    broken = tmp_path / "broken"
    shutil.copytree(trained["good"], broken)
    (broken / "knn.npz").unlink()
    line = one_error_line(run_cli("promote", "--router", tmp_path / "new", "--candidate", broken))
    assert "knn.npz" in line and not (tmp_path / "new").exists()
    # a versions folder inside the candidate would copy itself into itself, forever: bad input at once
    cand = tmp_path / "cand"
    shutil.copytree(trained["good"], cand)
    line = one_error_line(run_cli("promote", "--router", cand / "live", "--candidate", cand))
    assert "the versions folder is inside the candidate" in line
    assert not (cand / "live").exists()


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no handler catches a BaseException here)."""


def test_a_promotion_killed_before_versions_json_leaves_no_record(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "live"

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(vs, "set_current", killed)  # the copy made and the record written: then killed
        with pytest.raises(_Killed):
            run_cli("promote", "--router", live, "--candidate", trained["bad"])
    assert vs.read_state(live).current is None
    assert not list((live / "records").glob("0*.json"))  # no record of a promotion that did not happen
    res = run_cli("promote", "--router", live, "--candidate", trained["bad"])  # the rerun works
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (live / "records").iterdir()) == ["0001-promote-v2.json"]
    # killed after versions.json named the record but before it was in place: the next step finishes it
    state = vs.read_state(live)
    pending = live / "records" / ".0002-rollback-v1.json.pending"
    pending.write_text("{}")
    state.history.append({"step": 2, "action": "rollback", "record": "records/0002-rollback-v1.json"})
    (live / vs.VERSIONS_FILE).write_text(json.dumps(state.to_json()))
    assert vs.recover(live) == ["finished 0002-rollback-v1.json"] and not pending.exists()


def test_the_guards_rollback_killed_before_versions_json_leaves_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tela_core.serve.guard import Comparison, rollback_versions

    live, src = tmp_path / "live", tmp_path / "router"
    src.mkdir()
    (src / "tela.json").write_text("{}")
    vs.init(live)
    for _ in range(2):
        vs.set_current(live, vs.add_version(live, src), "promote")
    c = Comparison("v2", "v1", 0.2, 0.8, 50, 50, 0.6, 0.1, True)

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(vs, "set_current", killed)
        with pytest.raises(_Killed):
            rollback_versions(live, c)
    assert vs.read_state(live).current == "v2" and not list((live / "records").glob("0*.json"))
    assert rollback_versions(live, c) and vs.read_state(live).current == "v1"
    assert [p.name for p in (live / "records").iterdir()] == ["0001-rollback-v1.json"]


def test_the_evaluation_data_counts_each_prompt_once_and_names_the_routers_models(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["bad"]).exit_code == 0
    traffic = trained["traffic"].read_text(encoding="utf-8")
    # the same prompts twice would narrow the interval as if they were twice the evidence
    twice = tmp_path / "twice.jsonl"
    twice.write_text(traffic + traffic, encoding="utf-8")
    args = ["promote", "--router", live, "--candidate", trained["good"], "--dry-run", "--json"]
    res = run_cli(*args, "--data", twice)
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["data"]["records"] == record["numbers"]["apgr"]["n"] == 200
    assert record["data"]["duplicates_dropped"] == 200
    # outcomes of other models than the routers': bad input naming both sets, not an APGR of the wrong models
    rows = [json.loads(x) for x in traffic.splitlines()]
    other = tmp_path / "other.jsonl"
    with other.open("w", encoding="utf-8") as f:
        for r in rows:
            o = r["outcomes"]
            r.update(outcomes={"a": o[WEAK], "b": o[STRONG]}, costs={"a": 0.001, "b": 0.01})
            f.write(json.dumps(r) + "\n")
    line = one_error_line(run_cli(*args, "--data", other))
    assert f"no outcomes for {WEAK}, {STRONG}, which the routers choose between (the data has a, b)" in line
    line = one_error_line(run_cli(*args, "--data", trained["traffic"], "--weak-model", STRONG, "--strong-model", WEAK))
    assert "are the wrong way round" in line
    # every prompt with equal outcomes: APGR is undefined, and the message says so (not "pick another pair")
    same = tmp_path / "same.jsonl"
    same.write_text("".join(traffic.splitlines(keepends=True)[i] for i in (0, 1, 2)), encoding="utf-8")
    assert {json.loads(x)["outcomes"][WEAK] for x in same.read_text().splitlines()} == {1.0}
    assert "on these 3 prompts, so APGR is undefined" in one_error_line(run_cli(*args, "--data", same))
    # a 95% interval from a handful of resamples is no 95% interval
    res = run_cli(*args, "--data", trained["traffic"], "--resamples", "5")
    assert res.exit_code == 2 and "--resamples" in res.output and "100" in res.output
    res = run_cli(*args, "--data", trained["traffic"], "--seed", "-1")  # numpy's seeds are not negative
    assert res.exit_code == 2 and "--seed" in res.output and "Traceback" not in res.output, res.output


def test_promote_weighs_shadow_sampled_labels_by_their_probability_and_says_so(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """Records from a shadow log carry ``sampling_p``; tela promote counts each prompt 1/p, and its
    record says so and how many records carried one (tests/test_promote_weighted.py: the rule)."""
    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["bad"]).exit_code == 0
    rows = [json.loads(x) for x in trained["traffic"].read_text(encoding="utf-8").splitlines()]
    sampled = tmp_path / "sampled.jsonl"
    sampled.write_text(
        "".join(json.dumps({**r, "sampling_p": 0.5 if i % 3 else 0.125}) + "\n" for i, r in enumerate(rows))
    )
    args = ["promote", "--router", live, "--candidate", trained["good"], "--dry-run", "--json"]
    record = json.loads(run_cli(*args, "--data", sampled).stdout)
    weighting = record["numbers"]["weighting"]
    assert weighting["weighted"] and weighting["with_p"] == weighting["records"] == 200
    assert weighting["p_range"] == [0.125, 0.5] and "weighted by 1/p" in record["why"]
    unweighted = json.loads(run_cli(*args, "--data", sampled, "--unweighted").stdout)
    assert not unweighted["numbers"]["weighting"]["weighted"] and "1/p" not in unweighted["why"]
    assert unweighted["numbers"]["apgr"] != record["numbers"]["apgr"]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(sampled.read_text().split("\n", 1)[1] + json.dumps(rows[0]) + "\n")
    line = one_error_line(run_cli(*args, "--data", mixed))
    assert "199 of the 200 evaluation records carry a shadow sampling probability (sampling_p) and 1 do not" in line


def test_a_two_model_current_version_and_a_candidate_among_more_models(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """v1 routes between two models; the candidate among three (a middle model added): tela promote
    compares them on AIQ, the current version's curve being its threshold sweep between its pair."""
    mid = "mid-model"
    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]

    def three(path: Path, part: list[dict[str, Any]]) -> Path:
        from tela_core.data.records import seed_record

        with path.open("w", encoding="utf-8") as f:
            for r in part:
                hard = _hard(r["group"])
                out = {WEAK: 0.0 if hard else 1.0, mid: 1.0 if hard else 0.0, STRONG: 1.0}
                costs = {WEAK: 0.001, mid: 0.002, STRONG: 0.01}
                f.write(json.dumps(seed_record(r["prompt"], None, outcomes=out, costs=costs, id=r["id"]).to_json()))
                f.write("\n")
        return path

    cand = tmp_path / "cand"
    res = run_cli(
        "run", "--family", "embedding-knn", "--data", three(tmp_path / "train3.jsonl", rows[0::2]), "--output", cand,
        "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    live = tmp_path / "live"
    assert run_cli("promote", "--router", live, "--candidate", trained["good"]).exit_code == 0
    args = ["promote", "--router", live, "--candidate", cand, "--data", three(tmp_path / "t3.jsonl", rows[1::2])]
    res = run_cli(*args, "--dry-run", "--json", "--resamples", "100")
    assert res.exit_code in (0, 1), res.output
    record = json.loads(res.stdout)
    assert record["numbers"]["metric"] == "aiq", record
    assert f"the current version routes between {WEAK} and {STRONG} only" in record["why"]
    # a record without the added model's outcome (or the pair's), and data without the added model at
    # all: one line naming the file and the record (before: the record's id alone, no file)
    objs = [json.loads(x) for x in (tmp_path / "t3.jsonl").read_text(encoding="utf-8").splitlines()]
    for model in (mid, WEAK):
        masked = tmp_path / f"masked-{model.replace('/', '_')}.jsonl"
        objs[4]["outcomes"].pop(model, None)
        masked.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
        line = one_error_line(run_cli("promote", "--router", live, "--candidate", cand, "--data", masked))
        assert line.startswith(f"Error: {masked}: record {objs[4]['id']!r} has no outcome") and model in line, line
    line = one_error_line(run_cli("promote", "--router", live, "--candidate", cand, "--data", trained["traffic"]))
    assert line.startswith(f"Error: {trained['traffic']}: no record has an outcome for {mid}"), line


NIM3 = ["gemma-2-9b-it", "llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct"]


@needs_public_data("llmrouter", "llmrouter-nim9")
def test_a_version_that_orders_the_same_models_otherwise_is_served_by_the_right_upstreams(tmp_path: Path) -> None:
    """Routers among N models order them cheap -> strong by the costs they saw, so a retrained
    version may list the same models in another order; tela promote compares it, and tela serve
    must still send each model's prompts to that model's upstream, not to the one in its place."""
    from tela_core.plugins import get_registry
    from tela_core.routing.artifact import read_policy, write_policy
    from tela_core.serve.config import ServeConfig
    from tela_core.serve.served_routers import load_router

    nim9 = public_data("llmrouter", "llmrouter-nim9")
    assert nim9 is not None
    src = get_registry().create("source", "llmrouter-json", {})
    data = tmp_path / "records.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for r in list(src.records(nim9 / "dcrouter_preprocessed_train.json"))[:150]:
            obj = r.to_json()
            obj.update(outcomes={m: obj["outcomes"][m] for m in NIM3}, costs={m: obj["costs"][m] for m in NIM3})
            f.write(json.dumps(obj) + "\n")
    v1 = tmp_path / "v1"
    res = run_cli("run", "--family", "embedding-knn", "--data", data, "--output", v1, "--quiet")
    assert res.exit_code == 0, res.output
    v2 = tmp_path / "v2"
    shutil.copytree(v1, v2)
    spec = read_policy(v1)
    write_policy(v2, spec["name"], spec["options"], [spec["models"][i] for i in (1, 0, 2)])
    ups = {"small": NIM3[0], "mid": NIM3[1], "big": NIM3[2]}
    for version in (v1, v2):
        cfg = ServeConfig.model_validate(
            {
                "routers": {"nm": {"path": str(version), "upstreams": list(ups)}},
                "upstreams": {u: {"base_url": "http://127.0.0.1:9/v1", "model": m} for u, m in ups.items()},
            }
        )
        served = load_router(cfg, "nm")
        try:
            assert served.upstream_of == {m: u for u, m in ups.items()}, version
        finally:
            served.batcher.close(5.0)


def _get(url: str) -> tuple[dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return dict(r.headers), r.read().decode()


def _version_of(server: Any) -> str:
    req = urllib.request.Request(
        server.url + "/v1/chat/completions",
        data=json.dumps({"model": "router-live", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(r.headers.get("x-tela-version"))


@pytest.fixture(scope="module")
def served(trained: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """The versions folder with the bad router as v1, and two `tela serve` replicas of it."""
    pytest.importorskip("uvicorn")
    from serve_support import EchoStandIn, TelaServe, free_port

    live = trained["root"] / "live"
    res = run_cli("promote", "--router", live, "--candidate", trained["bad"])
    assert res.exit_code == 0 and "promoted: v1" in res.output, res.output
    # the record's path as a file the user can open from where the command ran, not the folder's own path
    said = next(line for line in res.output.splitlines() if line.startswith("record: "))
    assert Path(said.removeprefix("record: ")).is_file(), said
    small, big = EchoStandIn("small"), EchoStandIn("big")
    logs = [trained["root"] / "decisions-a.jsonl", trained["root"] / "decisions-b.jsonl"]
    servers: list[Any] = []
    try:
        for log in logs:
            args = ["--router", f"live={live}", "--weak", f"{small.url}#small", "--strong", f"{big.url}#big"]
            args += ["--admin-token-env", "W7_ADMIN", "--decision-log", str(log)]
            servers.append(TelaServe(args, free_port(), extra_env={"W7_ADMIN": TOKEN}))
        yield {"live": live, "servers": servers, "logs": logs}
    finally:
        for s in servers:
            s.stop()
        small.close()
        big.close()


def test_promote_refuse_and_rollback_reach_both_replicas(
    trained: dict[str, Path], served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve_support import free_port, metric

    live, (a, b) = served["live"], served["servers"]
    assert _version_of(a) == _version_of(b) == "v1"

    # a better candidate: promoted beyond the interval, recorded, and both servers reloaded at once
    monkeypatch.setenv("TELA_ADMIN_TOKEN", TOKEN)
    res = run_cli(
        "promote", "--router", live, "--candidate", trained["good"], "--data", trained["traffic"],
        "--server", a.url, "--server", b.url, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["decision"] == "promote" and record["version"] == "v2"
    assert record["numbers"]["apgr"]["lo"] > 0 and record["data"]["records"] == 200
    assert [s["ok"] for s in record["servers"]] == [True, True]
    assert json.loads((live / record["record"]).read_text())["servers"] == record["servers"]
    assert vs.read_state(live).current == "v2"
    assert _version_of(a) == _version_of(b) == "v2"
    _, text = _get(a.url + "/metrics")
    assert metric(text, "tela_router_version", router="live", version="v2") == 1.0
    assert metric(text, "tela_router_version", router="live", version="v1") == 0.0
    lines = [json.loads(x) for x in served["logs"][0].read_text().splitlines()]
    assert [x["version"] for x in lines[-2:]] == ["v1", "v2"]

    # a worse candidate: refused (exit 1) naming APGR and by how much; nothing changes but the record
    res = run_cli("promote", "--router", live, "--candidate", trained["bad"], "--data", trained["traffic"])
    assert res.exit_code == 1, res.output
    assert "refused: APGR worse beyond the interval" in res.output and "below 0" in res.output
    refusal = json.loads(next((live / "records").glob("*-refuse.json")).read_text())
    assert refusal["failed"]["number"] == "apgr" and refusal["failed"]["by"] > 0.1
    assert vs.read_state(live).current == "v2" and vs.versions(live) == ["v1", "v2"]

    # rollback: recorded; a server that is down is named (exit 3), the replicas follow by themselves
    dead = f"http://127.0.0.1:{free_port()}"
    res = run_cli("rollback", "--router", live, "--reason", "test", "--server", dead)
    assert res.exit_code == 3, res.output
    assert f"server {dead}: did not reload: not reached" in res.output
    assert vs.read_state(live).current == "v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {_version_of(a), _version_of(b)} != {"v1"}:
        time.sleep(0.3)
    assert _version_of(a) == _version_of(b) == "v1"
    res = run_cli("rollback", "--router", live)
    assert "v1 is the first version; there is no earlier one to go back to" in one_error_line(res)


def test_a_server_that_serves_another_folder_did_not_reload_this_one(
    trained: dict[str, Path], served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELA_ADMIN_TOKEN", TOKEN)
    a = served["servers"][0]  # serves trained/live, not this folder
    res = run_cli("promote", "--router", tmp_path / "other", "--candidate", trained["good"], "--server", a.url)
    assert res.exit_code == 3, res.output
    assert f"server {a.url}: did not reload: reloaded, but it serves no router from the versions folder" in res.output
    assert "(its routers: live)" in res.output
    monkeypatch.setenv("TELA_ADMIN_TOKEN", "not-the-token-42")
    res = run_cli("promote", "--router", tmp_path / "third", "--candidate", trained["good"], "--server", a.url)
    assert res.exit_code == 3 and "HTTP 401" in res.output and "not-the-token-42" not in res.output


def test_servers_are_reloaded_at_once(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each --server waits for its own reload (a large router loads for a while): they are asked
    together, not one after another. Two stand-in servers that answer only once both were asked."""
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    live = tmp_path / "live"
    both = threading.Barrier(2, timeout=10)

    class Reload(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            try:
                both.wait()
                status, version = 200, "v1"
            except threading.BrokenBarrierError:
                status, version = 500, None
            body = json.dumps(
                {"routers": {"live": {"ok": True, "versions": os.path.realpath(live), "version": version}}}
            )
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Reload) for _ in range(2)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("TELA_ADMIN_TOKEN", TOKEN)
        urls = [f"http://127.0.0.1:{srv.server_address[1]}" for srv in servers]
        res = run_cli(
            "promote", "--router", live, "--candidate", trained["good"], "--server", urls[0], "--server", urls[1]
        )
        assert res.exit_code == 0, res.output
        assert [ln for ln in res.output.splitlines() if ln.startswith("server")] == [
            f"server {u}: reloaded" for u in urls
        ]
    finally:
        for srv in servers:
            srv.shutdown()


class _FixedRouter:
    """A router whose ``w`` per prompt is given (the decision rule's unit test needs no model)."""

    models = [WEAK, STRONG]

    def __init__(self, w: list[float], threshold: float) -> None:
        self.w, self.t = w, threshold

    def scores(self, prompts: list[str]) -> Any:
        from tela_core.components import Scores

        return Scores(w=np.asarray(self.w[: len(prompts)], dtype=float))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(STRONG if x >= self.t else WEAK, float(x), self.t) for x in scores.w]


def _records(weak: list[float]) -> list[Any]:
    from tela_core.data.records import seed_record

    return [seed_record(f"prompt {i}", None, outcomes={WEAK: x, STRONG: 1.0}) for i, x in enumerate(weak)]


np = pytest.importorskip("numpy")


def test_the_decision_rule_equal_within_the_interval_promotes_only_the_cheaper() -> None:
    from tela_core.eval.bootstrap import paired_apgr
    from tela_core.eval.promotion import compare

    rng = np.random.default_rng(3)
    weak = [float(x) for x in rng.integers(0, 2, 120)]
    w = [float(1 - x + rng.normal(0, 0.6)) for x in weak]  # informative, noisy
    from tela_core.eval.bootstrap import apgr_resampled
    from tela_core.eval.metrics import apgr

    wa, wk, st = np.round(np.array(w), 1), np.array(weak), np.ones(120)  # rounded: ties, kept in input order
    idx = rng.integers(0, 120, size=(25, 120))
    assert apgr_resampled(wa, wk, st, idx).tolist() == [apgr(wa[i], wk[i], st[i]) for i in idx]
    same = paired_apgr(np.array(w), np.array(w), np.array(weak), np.ones(120))
    assert same.diff == same.lo == same.hi == 0.0 and not same.better and not same.worse
    records = _records(weak)
    # no prompt the weak model gets wrong scores between the two thresholds below, so the higher one
    # sends fewer prompts to the strong model and loses none there
    w = [0.95 if x == 0 and 0.3 <= v < 0.9 else v for v, x in zip(w, weak)]
    # the same scores at a higher threshold: equal APGR, fewer strong calls, the same quality -> promoted
    c = compare(_FixedRouter(w, 0.9), _FixedRouter(w, 0.3), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.candidate.quality == c.current.quality
    assert c.decision == "promote" and c.why.startswith("equal within the interval and cheaper")
    assert c.candidate.strong_share < c.current.strong_share and c.failed is None
    # the other way round: equal, not cheaper -> refused, naming the strong-call share and by how much
    c = compare(_FixedRouter(w, 0.3), _FixedRouter(w, 0.9), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.decision == "refuse" and "not cheaper: strong-call share" in c.why
    assert "its lower end is 0.0000, not above 0" in c.why  # not "-0.0000 below 0", nor "0.0000 below 0"
    assert c.failed is not None and c.failed["number"] == "strong_share"
    assert c.failed["by"] == pytest.approx(c.candidate.strong_share - c.current.strong_share) and c.failed["by"] > 0
    # the same scores, a threshold that never calls the strong model: equal APGR (it ignores the
    # threshold) and cheaper, but worse where it routes -> refused, naming the quality and by how much
    c = compare(_FixedRouter(w, 9.0), _FixedRouter(w, 0.3), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.apgr.diff == 0 and c.candidate.strong_share == 0 < c.current.strong_share
    assert c.decision == "refuse" and "cheaper, but worse at its saved policy: mean outcome" in c.why, c.why
    assert c.failed is not None and c.failed["number"] == "quality" and c.failed["by"] > 0.2
    # a slightly noisier copy: not better beyond the interval (its lower end below 0), and it says so
    w2 = [x + float(rng.normal(0, 0.3)) for x in w]
    c = compare(_FixedRouter(w2, 0.5), _FixedRouter(w, 0.5), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.apgr.lo < 0 < c.apgr.hi or c.apgr.worse


def test_a_rounding_size_saving_is_not_cheaper() -> None:
    """Equal within the interval and one prompt in 300 fewer sent to the strong model: promoted, and
    the drift benchmark's versions churned on such savings. Cheaper now means at least 1% below."""
    from tela_core.eval.promotion import MIN_SAVING, compare

    rng = np.random.default_rng(11)
    weak = [float(x) for x in rng.integers(0, 2, 300)]
    w = [float(v) for v in rng.permutation(300) / 300.0]
    records = _records(weak)
    ranked = sorted(w)
    t_cur, t_one_less, t_far = ranked[-150], ranked[-149], ranked[-120]
    c = compare(_FixedRouter(w, t_one_less), _FixedRouter(w, t_cur), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert 0 < c.current.strong_share - c.candidate.strong_share < MIN_SAVING * c.current.strong_share
    assert c.decision == "refuse" and "not cheaper" in c.why and "at least 1% below" in c.why, c.why
    c = compare(_FixedRouter(w, t_far), _FixedRouter(w, t_cur), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.candidate.strong_share < c.current.strong_share * (1 - MIN_SAVING)
    assert c.why.startswith("equal within the interval and cheaper") or "worse at its saved policy" in c.why, c.why


class _BackwardsRouter(_FixedRouter):
    """Scores that rank prompts well, and a saved policy that sends the strong model the prompts with
    the lowest w (as many as the threshold would)."""

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        w = np.asarray(scores.w, dtype=float)
        n_strong = int((w >= self.t).sum())
        strong = set(np.argsort(w)[:n_strong].tolist())
        return [Decision(STRONG if i in strong else WEAK, float(x), self.t) for i, x in enumerate(w)]


def test_better_apgr_with_a_worse_and_not_cheaper_saved_policy_is_refused() -> None:
    """APGR ranks the prompts, whatever the saved policy does with them: a candidate that ranks better
    but would serve worse answers for the same money is refused, naming the mean outcome."""
    from tela_core.eval.promotion import compare

    rng = np.random.default_rng(5)
    weak = [float(x) for x in rng.integers(0, 2, 200)]
    good = [float(1 - x + rng.normal(0, 0.3)) for x in weak]
    noisy = [float(1 - x + rng.normal(0, 1.5)) for x in weak]
    records = _records(weak)
    c = compare(_FixedRouter(good, 0.5), _FixedRouter(noisy, 0.5), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.apgr.better and c.decision == "promote"
    share = c.current.strong_share
    t = float(np.quantile(good, 1 - share))  # the backwards candidate calls the strong model as often
    c = compare(_BackwardsRouter(good, t), _FixedRouter(noisy, 0.5), records, WEAK, STRONG)  # type: ignore[arg-type]
    assert c.apgr.better and c.candidate.strong_share >= c.current.strong_share
    assert c.decision == "refuse" and "but its saved policy is worse and not cheaper: mean outcome" in c.why, c.why
    assert c.failed is not None and c.failed["number"] == "quality" and c.failed["by"] > 0


class _FixedNRouter:
    """A router among three models whose predicted qualities are given."""

    models = ["small", "mid", "big"]
    path = Path("fixed")
    manifest: dict[str, Any] = {"scorer": "fixed"}

    def __init__(self, quality: Any) -> None:
        self.quality = quality

    def scores(self, prompts: list[str], quality: bool = False) -> Any:
        from tela_core.components import Scores

        return Scores(w=self.quality[:, -1], quality=self.quality, models=tuple(self.models))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(self.models[int(np.argmax(q))], 0.0, None) for q in scores.quality]


def test_n_model_routers_are_compared_on_aiq() -> None:
    from tela_core.data.records import seed_record
    from tela_core.eval import nmodel
    from tela_core.eval.promotion import aiq_fast, compare

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, size=(150, 3)).astype(float)
    truth[:, 2] = 1.0
    costs = {"small": 0.001, "mid": 0.003, "big": 0.01}
    records = [
        seed_record(f"p{i}", None, outcomes=dict(zip(costs, map(float, t))), costs=costs) for i, t in enumerate(truth)
    ]
    cost = np.tile(list(costs.values()), (150, 1))
    h = nmodel.hull(nmodel.sweep(truth * 0.8 + 0.1, cost, truth))
    assert aiq_fast(h, 0.001, 0.01) == pytest.approx(nmodel.aiq(h, 0.001, 0.01), abs=1e-12)
    good, noise = _FixedNRouter(truth * 0.8 + 0.1), _FixedNRouter(rng.random((150, 3)))
    c = compare(good, noise, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    assert c.metric == "aiq" and c.decision == "promote" and c.interval.lo > 0
    c = compare(noise, good, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    assert c.decision == "refuse" and c.why.startswith("AIQ worse beyond the interval")
    assert c.failed is not None and c.failed["number"] == "aiq"
    # a retrained router may order the same models otherwise (cheap -> strong by the costs it saw):
    # comparable, and compared column by column by name
    from tela_core.eval.promotion import check_comparable

    swapped = _FixedNRouter(noise.quality[:, [1, 0, 2]])
    swapped.models = ["mid", "small", "big"]
    check_comparable(good, swapped)  # type: ignore[arg-type]
    c2 = compare(good, swapped, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    c1 = compare(good, noise, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    assert c2.interval == c1.interval and c2.current == c1.current
    with pytest.raises(TelaError, match="a version must route between the same models"):
        check_comparable(_FixedRouter([0.5], 0.5), good)  # type: ignore[arg-type]
