"""User errors exit 2 on one line naming the flag; anything else is a bug and shows its traceback."""

from __future__ import annotations

import importlib

import pytest

from ofa_edge.cli import main
from ofa_edge.cli.common import flag_of, user_message
from ofa_edge.errors import InvalidValueError, MissingStepError, OfaEdgeError
from ofa_edge.search import EvolutionConfig, parse_latency
from ofa_edge.train.strategies import STRATEGIES, Strategy, register_strategy


def test_library_errors_carry_the_field_and_name_no_flag():
    for make, field in ((lambda: EvolutionConfig(population=1), "population"),
                        (lambda: parse_latency("fast"), "latency")):
        with pytest.raises(OfaEdgeError) as err:
            make()
        assert err.value.field == field and "--" not in str(err.value)


def test_the_cli_shows_a_field_as_its_flag():
    assert flag_of("labels_per_class") == "--labels-per-class" and flag_of("tables_dir") == "--tables"
    assert user_message(InvalidValueError("batch size: must be at least 1, got 0", "batch_size")) == \
        "--batch-size: must be at least 1, got 0"
    assert user_message(InvalidValueError("needs more rows", "samples")) == "--samples: needs more rows"
    missing = MissingStepError("no table", "profile", {"device": "pi4", "space": "cifar-tiny"}, "device")
    assert user_message(missing) == "--device: no table; run `ofa-edge profile --device pi4 --space cifar-tiny`"


def test_a_user_error_exits_2_on_one_line(capsys):
    assert main(["subnet", "--space", "cifar-tiny", "--subnet", '{"ks": 3, "e": 2, "d": 2, "r": 99}']) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "99 is not one of [24, 32]" in err


class Broken(Strategy):
    """A plug-in with a bug: its loss looks up a key that is not there."""

    def subnet_loss(self, phase, model, role, r, batch, teacher, context, stats):
        return context["missing"]


def test_a_bug_exits_1_with_its_traceback(tmp_path, capsys):
    # `train`'s --strategy help lists the registry when its module is first imported: import it before
    # registering, so the throw-away plug-in never ends up in the help text other tests read
    importlib.import_module("ofa_edge.cli.train")
    register_strategy("broken")(Broken)
    try:
        code = main(["train", "--strategy", "broken", "--space", "cifar-tiny", "--epochs", "1",
                     "--steps-per-epoch", "1", "--batch-size", "8", "--eval-every", "0", "--quiet",
                     "--out", str(tmp_path / "run")])
    finally:
        STRATEGIES.remove("broken")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "KeyError: 'missing'" in err and "internal error" in err
