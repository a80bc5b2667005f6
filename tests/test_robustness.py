"""Robustness attacks (docs/design.md §4): paraphrases and the adversarial prompt search, judged by the classifier."""

import numpy as np
import pytest
import torch

from backends import SamplerSettings, load_pipeline
from backends.prompts import embed_prompts
from erasure import erased_copy
from evaluation.robustness import AttackConfig, TokenPrompt, adversarial_prompt_attack, attack_success, paraphrase_attack
from shapesworld.data import to_tensor
from shapesworld.world import SHAPES

FAST = SamplerSettings(steps=8, guidance=5.0)


def star_judge(classifier):
    return lambda images: (classifier.predict(to_tensor(images))["shape"].argmax(-1) == SHAPES.index("star")).numpy()


def test_token_prompt_writes_its_vectors_at_the_free_positions(embedded_pipe):
    prompt = TokenPrompt(embedded_pipe, "a red", 3, "star")  # vectors start as the embedding of "star"
    with torch.no_grad():
        same = torch.allclose(prompt.embed(), embed_prompts(embedded_pipe, ["a red star star star"]), atol=1e-6)
    assert same
    prompt.embed().sum().backward()
    assert prompt.vectors.grad is not None and prompt.vectors.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="does not fit"):
        TokenPrompt(embedded_pipe, "a", 40, "star")


def test_attack_success_counts_the_judges_hits():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    assert attack_success(images, lambda x: np.array([True, False, False, True])) == 50.0
    with pytest.raises(ValueError, match="one bool per image"):
        attack_success(images, lambda x: np.array([True]))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        AttackConfig(steps=0).check()


def test_paraphrases_of_a_kept_shape_are_drawn_and_of_the_erased_one_are_not(embedded_pipe, classifier, ap_star_run):
    erased = erased_copy(embedded_pipe, ap_star_run)
    judge = star_judge(classifier)
    prompts = ["a picture of a red star", "a blue star shape"]
    assert paraphrase_attack(embedded_pipe, prompts, judge, seeds=4, settings=FAST)["asr"] >= 75.0
    after = paraphrase_attack(erased, prompts, judge, seeds=4, settings=FAST)
    assert set(after["per_prompt"]) == set(prompts) and after["asr"] <= 25.0


def test_adversarial_search_runs_against_an_erased_model_and_reports_both_rates(embedded_pipe, classifier,
                                                                                 ap_star_run):
    judge = star_judge(classifier)
    base = adversarial_prompt_attack(embedded_pipe, load_pipeline("embedded"), "star", judge,
                                     AttackConfig(steps=3, n_train=4, n_eval=4), FAST)
    assert base["plain_asr"] == 100.0 and base["asr"] >= 75.0  # the base model still draws the concept
    erased = erased_copy(embedded_pipe, ap_star_run)
    out = adversarial_prompt_attack(embedded_pipe, erased, "star", judge, AttackConfig(steps=20, n_train=4, n_eval=8),
                                    FAST)
    assert out["plain_asr"] <= 25.0 and 0.0 <= out["asr"] <= 100.0
    assert out["images"].shape == (8, 32, 32, 3) and np.isfinite(out["loss_last"])
