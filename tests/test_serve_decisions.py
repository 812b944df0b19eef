"""The decision log: whole lines from concurrent writers, read back for `tela calibrate --traffic`."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from serve_support import train_length_router

from tela_core.infra.errors import InputError, TelaError
from tela_core.serve.decisions import DecisionLog, calibrate_from_traffic, read_decisions, traffic_scores


def _rec(router, w, **kw):
    return {"router": router, "w": w, "threshold": 0.5, "upstream": "small", "status": 200, "sticky": False, **kw}


def test_lines_from_many_threads_stay_whole(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", log_prompts=True)

    def write(k):
        for i in range(200):
            log.write(_rec("r", i / 200, prompt=f"{k}:" + "x" * (i * 37 % 3000)))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    rows = [r for _, r in read_decisions(tmp_path / "d.jsonl")]
    assert len(rows) == 1600 and all(r["prompt"].split(":")[0].isdigit() for r in rows)


def test_reading_skips_a_killed_servers_half_line_but_names_other_bad_lines(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(_rec("r", 0.1)) + "\n" + json.dumps(_rec("r", 0.9)) + "\n" + '{"router": "r", "w": 0.')
    assert [r["w"] for _, r in read_decisions(p)] == [0.1, 0.9]
    p.write_text(json.dumps(_rec("r", 0.1)) + "\nnot json\n" + json.dumps(_rec("r", 0.9)) + "\n")
    with pytest.raises(InputError, match=r"d.jsonl:2: not a JSON object"):
        list(read_decisions(p))
    with pytest.raises(InputError, match="decision log not found"):
        list(read_decisions(tmp_path / "missing.jsonl"))


def test_traffic_scores_pick_one_router_and_leave_out_sticky_and_passthrough(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [_rec("a", 0.2), _rec("a", 0.8), _rec("a", 0.9, sticky=True), _rec(None, None), _rec("b", 0.5)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert traffic_scores(p, "a") == ([0.2, 0.8], "a")
    with pytest.raises(TelaError, match="several routers"):
        traffic_scores(p)
    with pytest.raises(TelaError, match=r"no requests routed by 'c'; routers in the log: a, b"):
        traffic_scores(p, "c")
    p.write_text(json.dumps(_rec(None, None)) + "\n")
    with pytest.raises(InputError, match="no routed requests"):
        traffic_scores(p)


def test_calibrate_from_traffic_sets_the_share(tmp_path):
    router = train_length_router(tmp_path / "len")
    w = np.random.default_rng(0).random(1000)
    log = tmp_path / "d.jsonl"
    log.write_text("".join(json.dumps(_rec("len", float(x))) + "\n" for x in w))
    out = calibrate_from_traffic(router, log, 0.25)
    policy = json.loads((router / "policy.json").read_text())
    assert policy["name"] == "calibrated" and out["requests"] == 1000
    t = policy["options"]["threshold"]
    assert (w >= t).mean() == pytest.approx(0.25, abs=0.002)
    assert policy["options"]["strong_share"] == 0.25 and "traffic of len" in policy["options"]["calibration_data"]
    from tela_core import Router

    assert Router.load(router).threshold == pytest.approx(t)


def test_tela_calibrate_traffic_cli(tmp_path, tela_cli):
    router = train_length_router(tmp_path / "len")
    log = tmp_path / "d.jsonl"
    log.write_text("".join(json.dumps(_rec("len", i / 100)) + "\n" for i in range(100)))
    res = tela_cli("calibrate", "--router", router, "--traffic", log, "--strong-share", "0.2")
    assert res.exit_code == 0, res.output
    assert "0.200 of 100 requests router 'len' routed go to the strong model" in res.output
    assert (
        0.79 < json.loads((router / "policy.json").read_text())["options"]["threshold"] <= 0.80
    )  # 20 of the 100 w at or above
    for args, msg in (
        ([], "--data FILE"),
        (["--traffic", str(log), "--data", str(log)], "one of them"),
        (["--traffic", str(tmp_path / "nope.jsonl")], "nope.jsonl: decision log not found"),
        (
            ["--traffic", str(log), "--traffic-router", "other"],
            "no requests routed by 'other'; routers in the log: len",
        ),
    ):
        res = tela_cli("calibrate", "--router", router, "--strong-share", "0.2", *args)
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output, res.output
