"""The package's public names: all importable, and ``import adversarial`` stays light."""

import subprocess
import sys

import adversarial


def test_every_export_imports_and_is_callable():
    assert sorted(adversarial.__all__) == sorted(adversarial._EXPORTS)
    for name in adversarial.__all__:
        assert callable(getattr(adversarial, name)), name
    assert set(adversarial.__all__) <= set(dir(adversarial))


def test_unknown_name_raises_attribute_error():
    try:
        adversarial.no_such_attack  # noqa: B018 -- the attribute access is the test
    except AttributeError as exc:
        assert "no_such_attack" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_does_not_load_tensorflow():
    # `python -m adversarial.train --help` must answer at once: the package import is lazy.
    code = "import sys, adversarial; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
