import json

from steelyard.cli import main


def test_simulate_prints_a_table_and_writes_plots(tmp_path, capsys):
    out = tmp_path / "plots"
    code = main(
        [
            "simulate",
            "--scenario",
            "supermarket",
            "--d",
            "2",
            "--load",
            "0.7",
            "--requests",
            "4000",
            "--warmup",
            "500",
            "--sweep",
            "0.5,0.7",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "p2c" in text and "theory" in text and "1.614" in text  # T_2(0.7) next to the simulated mean
    assert sorted(p.name for p in out.iterdir()) == ["supermarket-response.png", "supermarket-share.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in out.iterdir())


def test_simulate_json_for_scripts(capsys):
    code = main(
        [
            "simulate",
            "--scenario",
            "heterogeneous",
            "--requests",
            "2000",
            "--warmup",
            "200",
            "--algorithm",
            "round_robin",
            "--algorithm",
            "least_conn",
            "--no-plot",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["plots"] == [] and data["sweep"] == []
    assert [r["algorithm"] for r in data["results"]] == ["round_robin", "least_conn"]
    result = data["results"][1]
    assert {"mean", "p50", "p99", "p999", "max_queue", "drops", "failed", "share"} <= set(result)
    assert set(result["share"]) == {"fast-1", "fast-2", "medium-1", "medium-2", "slow-1", "slow-2"}


def test_simulate_a_scenario_file(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nalgorithms = ["random", "p2c"]\nrequests = 1000\nwarmup = 100\n'
        '[[servers]]\nname = "a"\ncount = 3\n'
    )
    assert main(["simulate", "--scenario", str(path), "--no-plot", "--balancers", "2", "--refresh", "1"]) == 0
    assert "mine at load 0.7" in capsys.readouterr().out


def test_bad_input_is_a_short_error_without_traceback(tmp_path, capsys):
    assert main(["simulate", "--scenario", "supermarket", "--d", "0", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "options → choices: input should be greater than or equal to 1; got 0" in err
    assert "Traceback" not in err
    assert main(["simulate", "--scenario", "nosuch", "--no-plot"]) == 2
    assert "no built-in scenario or file 'nosuch'" in capsys.readouterr().err
    assert main(["simulate", "--scenario", str(tmp_path / "gone.toml"), "--no-plot"]) == 2
    assert "cannot read file" in capsys.readouterr().err
    assert main(["simulate", "--load", "-1", "--no-plot"]) == 2
    assert "load: input should be greater than 0; got -1" in capsys.readouterr().err
    assert main(["simulate", "--sweep", "0.5,x"]) == 2
    assert "--sweep" in capsys.readouterr().err
