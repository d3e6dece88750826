"""The CLIs end to end with tiny settings, their JSON schema, resuming and bad options."""

import json
import os
import subprocess
import sys

import pytest

from adversarial import evaluate, train

EPSILON_KEYS = ["0.0", "0.1", "0.2"]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("adv_run")
    argv = ["--output-dir", str(out), "--dataset", "digits", "--epochs", "2", "--adv-epochs",
            "2", "--train-size", "200", "--validation-size", "100", "--num-steps", "2",
            "--validation-steps", "2", "--batch-size", "50", "--epsilon", "0.1"]
    assert train.main(argv) == 0
    return out, argv


def test_train_writes_both_models_and_its_config(trained_dir):
    out, _ = trained_dir
    assert (out / "standard.keras").is_file() and (out / "pgd_trained.keras").is_file()
    config = json.loads((out / "train_config.json").read_text())
    assert config["epochs"] == 2 and config["train_size"] == 200 and config["num_steps"] == 2
    assert config["dataset"] == "digits" and config["loss"] == "adversarial"
    assert set(config) == {f.name for f in train.dataclasses.fields(train.TrainConfig)}
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]  # atomic writes cleaned up


def test_train_keeps_the_epoch_of_best_validation_robust_accuracy(trained_dir):
    import keras

    out, _ = trained_dir
    state = json.loads((out / "checkpoints" / "pgd_trained.json").read_text())
    best = state["best"]
    assert best["monitor"] == "val_robust_accuracy" and best["epoch"] in (1, 2)
    saved = keras.models.load_model(out / "pgd_trained.keras")
    from adversarial.training import AdversarialTraining

    data = train.load_data("digits")
    x_val, y_val = data.x_train[-100:], data.y_train[-100:]
    checker = AdversarialTraining(saved, epsilon=0.1, validation_steps=2, seed=0)
    checker.compile(metrics=["accuracy"])
    result = checker.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert abs(result["robust_accuracy"] - best["score"]) < 0.06, (result, best)


def test_default_data_is_real_mnist():
    assert train.TrainConfig().dataset == "mnist"
    data = train.load_data("mnist")
    assert data.x_train.shape == (4000, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)


def test_train_resumes_instead_of_retraining(trained_dir, capsys):
    out, argv = trained_dir
    before = (out / "standard.keras").stat().st_mtime_ns
    assert train.main(argv) == 0
    assert "epochs" not in capsys.readouterr().out  # every epoch is already checkpointed
    assert (out / "standard.keras").stat().st_mtime_ns >= before
    state = json.loads((out / "checkpoints" / "pgd_trained.json").read_text())
    assert state["epoch"] == 2
    # an interruption after the first of the two standard epochs: only the second one runs
    state_path = out / "checkpoints" / "standard.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps(dict(state, epoch=1)))
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "[adversarial.train] standard: epochs 2..2" in printed
    assert "Epoch 2/2" in printed and "Epoch 1/2" not in printed
    assert "pgd_trained: epochs" not in printed


def test_evaluate_writes_robustness_json_with_the_schema_and_figures(trained_dir, capsys):
    out, _ = trained_dir
    argv = ["--output-dir", str(out), "--test-size", "40", "--num-steps", "3",
            "--num-queries", "20", "--epsilons", "0,0.1,0.2", "--szegedy", "1",
            "--distortion-step", "0.1"]
    assert evaluate.main(argv) == 0
    assert json.loads((out / "evaluate_config.json").read_text())["dataset"] == "digits"
    table = json.loads((out / "robustness.json").read_text())
    assert list(table) == ["standard", "pgd_trained"]
    for per_epsilon in table.values():
        assert list(per_epsilon) == EPSILON_KEYS
        cleans = {r["clean_accuracy"] for r in per_epsilon.values()}
        assert len(cleans) == 1  # the same test digits at every epsilon
        clean = cleans.pop()
        assert abs(round(clean * 40) - clean * 40) < 1e-9
        robust = [r["robust_accuracy"] for r in per_epsilon.values()]
        assert robust[0] == clean and robust == sorted(robust, reverse=True)
        for r in per_epsilon.values():
            low, high = r["robust_accuracy_ci95"]
            assert 0 <= low <= r["robust_accuracy"] <= high <= 1 and r["num_examples"] == 40
            # the ensemble's worst case is at most every single attack's accuracy
            assert all(r["robust_accuracy"] <= acc + 1e-9 for acc in r["per_attack"].values())
            assert isinstance(r["warnings"], list)
    printed = capsys.readouterr().out
    assert "[adversarial.evaluate] pgd_trained eps 0.1: robust" in printed
    szegedy = json.loads((out / "szegedy.json").read_text())
    assert len(szegedy["transfer_pgd"]["error"]) == 2
    for name in ["accuracy_vs_epsilon", "examples", "loss_surface_standard",
                 "loss_surface_pgd_trained"]:
        with open(out / f"adversarial_{name}.png", "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("module, argv, match", [
    (train, ["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (train, ["--epsilon", "-0.1"], "--epsilon must be > 0"),
    (train, ["--labels", "guess"], "--labels"),
    (train, ["--dataset", "cifar"], "--dataset must be 'mnist' or 'digits', got 'cifar'"),
    (train, ["--loss", "madry"], "--loss must be 'adversarial', 'mix' or 'trades'"),
    (train, ["--loss", "trades", "--attack", "fast"], "--attack must be 'pgd' with --loss trades"),
    (train, ["--mix-weight", "2"], "--mix-weight must be in [0, 1], got 2.0"),
    (train, ["--dataset", "digits", "--validation-size", "5000"], "--validation-size must be >= 0 and < the 1347"),
    (train, ["--epochs", "two"], "invalid int value: 'two'"),
    (train, ["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (evaluate, ["--output-dir", "/nonexistent/adv"], "--output-dir must be an existing folder"),
    (evaluate, ["--attacks", "apgd-ce,cw"], "--attacks"),
    (evaluate, ["--dataset", "cifar"], "--dataset must be"),
    (evaluate, ["--dataset", "digits"], "cannot load"),
    (evaluate, [], "--dataset auto needs a readable"),
])
def test_bad_options_print_one_line_and_exit_2(module, argv, match, capsys, tmp_path):
    if module is evaluate and (not argv or argv[0] != "--output-dir"):
        for name in ("standard", "pgd_trained"):
            (tmp_path / f"{name}.keras").write_bytes(b"")
        argv = ["--output-dir", str(tmp_path), *argv]
    assert module.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], captured.err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        train.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--output-dir", "--epochs", "--adv-epochs", "--epsilon", "--train-size"):
        assert option in text


def test_python_dash_m_exits_2_with_one_line_and_no_traceback():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "adversarial.evaluate", "--num-steps", "-3"],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "python -m adversarial.evaluate: error: --num-steps must be >= 1, got -3")
