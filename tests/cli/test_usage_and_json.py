"""Usage errors (unknown commands and flags with suggestions, argparse's own errors) as one line with
exit code 2; exit codes in `--help`; the `--json` document (schema tfxfer/1) on success and on every
kind of failure, with stdout holding nothing else."""

import json

import pytest

from tfxfer import cli
from tfxfer.cli.common import emit_json
from tfxfer.errors import GateError


def _one_line_error(capsys, argv, code=2):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: "), captured.err
    return lines[0], captured.out


@pytest.mark.parametrize("argv, expected", [
    (["rnu", "x.yaml"], "unknown command 'rnu'; did you mean 'run'? (see `tfxfer --help`)"),
    (["zzzz"], "unknown command 'zzzz'; the commands are: run, predict, evaluate, export, datasets"),
    (["--jsn", "datasets"], "unknown flag --jsn before the command"),
    (["rank", "data", "--candidats", "a"], "unknown flag --candidats for `tfxfer rank`; did you mean --candidates?"),
    (["rank", "x.yaml", "--max-sampels", "9"], "did you mean --max-samples?"),
    (["run", "x.yaml", "--head-epochs=3"], "did you mean --set train.head_epochs=3?"),
    (["export", "m.keras", "d", "--varaints", "int8"], "unknown flag --varaints for `tfxfer export`; did you mean "
                                                       "--variants?"),
    (["run"], "the following arguments are required: recipe (see `tfxfer run --help`)"),
    (["predict", "m.keras", "x.png", "--top", "three"], "argument --top: invalid int value: 'three'"),
    (["datasets", "show"], "argument action: invalid choice: 'show'"),
    (["datasets", "list", "extra"], "`name` is only for `tfxfer datasets describe NAME`"),
])
def test_usage_errors_are_one_line_with_exit_code_2(argv, expected, capsys):
    line, out = _one_line_error(capsys, argv)
    assert expected in line and out == ""


def test_flag_abbreviations_and_values_that_look_like_flags_still_work(capsys):
    assert cli.main(["datasets", "--ta", "image_classification"]) == 0  # argparse's unique-prefix rule
    assert "sentiment_movies" not in capsys.readouterr().out
    line, _ = _one_line_error(capsys, ["predict", "m.keras", "x.png", "--top", "-1"])
    assert "`--top` must be an int >= 1. Received: --top=-1" in line  # -1 is a value, not an unknown flag


def test_exit_codes_are_in_help(capsys):
    for argv in (["--help"], ["run", "--help"], ["rank", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for part in ("0 success", "1 run-time failure", "2 usage or recipe error", "3 the verification gate failed",
                     "130 interrupted"):
            assert part in text, (argv, part)


def test_json_listing_documents(capsys):
    assert cli.main(["datasets", "--json", "--task", "token_classification"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"schema": "tfxfer/1", "command": "datasets", "ok": True, "exit_code": 0, "error": None,
                   "datasets": [doc["datasets"][0]]} and doc["datasets"][0]["name"] == "wnut16"
    assert doc["datasets"][0]["sizes"] == {"train": 1916, "val": 236, "test": 242}
    assert cli.main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["backbones"]
    lite0 = next(r for r in rows if r["name"] == "efficientnet_lite0")
    assert lite0["input_size"] == [224, 224] and lite0["offline_weights"]
    assert lite0["float32_bytes"] == 4 * lite0["params"]


@pytest.mark.parametrize("argv, kind, code", [
    (["datasets", "describe", "elvp", "--json"], "UnknownNameError", 2),
    (["rnu", "--json"], "UsageError", 2),
    (["run", "--json"], "UsageError", 2),
    (["backbones", "--family", "x", "--json"], "UnknownNameError", 2),
])
def test_json_errors_are_documents(argv, kind, code, capsys):
    line, out = _one_line_error(capsys, argv, code)
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == code and doc["error"]["type"] == kind
    assert doc["error"]["exit_code"] == code and doc["error"]["message"] in line
    assert out.count("\n") == 1  # one document, one line


@pytest.mark.parametrize("exc, code, kind", [
    (KeyboardInterrupt(), 130, "KeyboardInterrupt"),
    (GateError("verification gate failed for int8"), 3, "GateError"),
    (OSError(28, "No space left on device", "/runs/x"), 1, "OSError"),
])
def test_json_on_interrupt_gate_and_os_errors(exc, code, kind, monkeypatch, capsys, tmp_path):
    def fail(args):
        print("progress line that must not reach stdout")
        raise exc

    monkeypatch.setitem(cli.COMMANDS, "report", fail)
    assert cli.main(["report", str(tmp_path), "--json"]) == code
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["command"] == "report" and doc["exit_code"] == code and doc["error"]["type"] == kind
    assert "progress line" in captured.err


def test_json_stdout_holds_only_the_document(monkeypatch, capsys, tmp_path):
    def chatty(args):
        print("Epoch 1/1 - loss: nan")
        emit_json(args, html="r.html", markdown="r.md", value=float("nan"))
        return 0

    monkeypatch.setitem(cli.COMMANDS, "report", chatty)
    assert cli.main(["report", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"schema": "tfxfer/1", "command": "report", "ok": True, "exit_code": 0,
                                        "error": None, "html": "r.html", "markdown": "r.md", "value": None}
    assert "Epoch 1/1" in captured.err


def test_a_closed_pipe_stops_quietly(monkeypatch, capsys, tmp_path):
    """`tfxfer backbones | head -3`: the reader leaves early; no error line, no traceback."""
    def reader_left(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "report", reader_left)
    assert cli.main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ""
