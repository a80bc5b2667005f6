"""ESR-k / PSR-k on known inputs."""

import pytest
import torch

from evaluation import erasure_rates


def test_always_right_classifier_preserves_everything_and_erases_nothing():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    probs = torch.nn.functional.one_hot(labels, 6).float()
    r = erasure_rates(probs, labels, erased={0, 1})
    assert r["psr1"] == 100 and r["esr1"] == 0 and r["psr5"] == 100 and r["esr5"] == 0


def test_top_k_counts_hits_in_the_first_k():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.1, 0.7], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 0])  # row 0: 2nd choice; row 1: 3rd choice; row 2: 1st
    r = erasure_rates(probs, labels, erased={1}, ks=(1, 2))
    assert r["esr1"] == 100 and r["esr2"] == 50 and r["psr1"] == 100


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        erasure_rates(torch.zeros(3), torch.zeros(3, dtype=torch.long), {0})
