"""StepBudget: a fixed number of steps per pass, across the epochs of another loader."""

from __future__ import annotations

import pytest
import torch

from mtlaug_lib.core.tasks import Task
from mtlaug_lib.data.loaders import StepBudget, TensorLoader
from mtlaug_lib.training.loop import train


class Numbers:
    """A data set whose sample i is the number i (so a batch says which samples it holds)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": index.float()[:, None, None, None].expand(-1, 3, 2, 2),
                "label": index % 2}


def ids(batches) -> list[list[int]]:
    return [b["image"][:, 0, 0, 0].long().tolist() for b in batches]


def endless(loader: TensorLoader, epochs: int) -> list[list[int]]:
    """The batches of epochs 0 .. epochs - 1 of ``loader``, in order."""
    out = []
    for e in range(epochs):
        loader.set_epoch(e)
        out += ids(loader)
    return out


def test_each_pass_takes_the_next_steps_batches_of_successive_epochs() -> None:
    loader = TensorLoader(Numbers(10), 3, shuffle=True, seed=1)  # 4 batches an epoch
    reference = endless(TensorLoader(Numbers(10), 3, shuffle=True, seed=1), 4)
    budget = StepBudget(loader, 6)
    assert len(budget) == 6
    first, second = ids(budget), ids(budget)  # the second pass continues where the first ended
    assert first == reference[:6] and second == reference[6:12]
    assert sorted(sum(first[:4], [])) == list(range(10))  # epoch 0: every sample once
    assert first[4:] != first[:2]  # then epoch 1, reshuffled
    budget.set_epoch(1)  # as train does on resume: pass 1 again
    assert ids(budget) == second


def test_fewer_steps_than_an_epoch_take_its_first_batches() -> None:
    loader = TensorLoader(Numbers(10), 2)
    assert ids(StepBudget(loader, 3)) == [[0, 1], [2, 3], [4, 5]]


def test_train_runs_exactly_the_budget() -> None:
    tasks = {"label": Task("label", "classification", 2)}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.tasks = model, ("label",)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"label": self.net(x)}

    history = train(Model(), tasks, StepBudget(TensorLoader(Numbers(10), 4), 7), epochs=2,
                    progress=False)
    assert history.steps == 14


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_steps_must_be_a_positive_integer(steps) -> None:
    with pytest.raises(ValueError, match="'steps'"):
        StepBudget(TensorLoader(Numbers(4), 2), steps)


def test_a_loader_without_length_is_refused() -> None:
    with pytest.raises(ValueError, match="'loader'"):
        StepBudget(iter([{"image": torch.zeros(1)}]), 3)
