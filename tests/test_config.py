import dataclasses

import pytest

from ddlib.core.config import Config


@dataclasses.dataclass(frozen=True)
class Toy(Config):
    lr: float = 0.01
    epochs: int = 50
    milestones: tuple[int, ...] = (25,)
    norm: str = "instance"
    note: str | None = None

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: expected >= 1")


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lrr'\].*valid keys"):
        Toy.from_dict({"lrr": 0.1})


def test_wrong_type_is_rejected_with_field_name():
    with pytest.raises(TypeError, match="Toy.epochs = '5'"):
        Toy(epochs="5")
    with pytest.raises(TypeError, match="Toy.epochs"):
        Toy(epochs=True)


def test_int_accepted_for_float_and_list_for_tuple():
    toy = Toy.from_dict({"lr": 1, "milestones": [10, 20]})
    assert toy.lr == 1 and toy.milestones == (10, 20)


def test_frozen_and_replace():
    toy = Toy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.lr = 1.0
    assert toy.replace(lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="unknown key"):
        toy.replace(learning_rate=0.5)


def test_validate_runs_on_construction_and_replace():
    with pytest.raises(ValueError, match="epochs=0"):
        Toy(epochs=0)
    with pytest.raises(ValueError, match="epochs=0"):
        Toy().replace(epochs=0)


def test_to_dict_round_trip():
    toy = Toy(lr=0.1, milestones=(1, 2), note="x")
    assert Toy.from_dict(toy.to_dict()) == toy
