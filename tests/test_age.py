"""AGE (docs/design.md §3.7): the target concept is a Gumbel-Softmax pick over AP's search space, the
erased concept is mapped onto it and it is kept; pi ascends only the keep loss."""

import torch

from erasure import get_method, resolve_config
from erasure.methods.age import gumbel_softmax_topk
from erasure.trainer import Context


def test_a_soft_sample_is_a_mixture_of_its_top_k_and_differentiable():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0], requires_grad=True)
    w = gumbel_softmax_topk(logits, 1.0, 2, torch.Generator().manual_seed(0))
    assert (w > 0).sum() == 2 and torch.isclose(w.sum(), torch.tensor(1.0))
    (w * torch.arange(4.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_the_target_moves_the_erasure_and_the_search_ascends_only_the_keep_loss(embedded_pipe):
    import copy

    cfg = resolve_config("age", "embedded", "object,fast", targets=["star"], ddim_steps=4, k_closest=8, n_centres=4)
    assert cfg.vocab == "world" and cfg.tau == 0.1 and cfg.hard  # the embedded profile over the paper's settings
    ctx = Context(copy.deepcopy(embedded_pipe), cfg)
    age = get_method("age")(ctx)
    space = age.spaces[cfg.prompts()[0]]
    assert "star" not in space.words and len(space.words) == 4
    loss, info = age.loss(0)  # step 0 trains theta' first: pi is untouched
    assert torch.equal(space.pi.detach(), torch.full((4,), 0.25)) and info["sampled"] in space.words
    assert set(info["losses"]) == {"erase", "keep", "total"} and info["losses"]["keep"] == 0.0  # theta' = theta yet
    loss.backward()
    assert all(p.grad is not None for p in ctx.trained.values())
    with torch.no_grad():  # make theta' differ, so the keep loss has a gradient in pi
        for p in ctx.trained.values():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    frozen = {n: p.detach().clone() for n, p in ctx.trained.items()}
    age.loss(1)  # one search step first
    assert not torch.equal(space.pi.detach(), torch.full((4,), 0.25))  # pi moved
    assert all(torch.equal(p.detach(), frozen[n]) for n, p in ctx.trained.items())  # the search left theta' alone
