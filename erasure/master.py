"""Float32 master copies of the trained tensors (docs/design.md §3.1, "precision").

A model loaded in bfloat16 or float16 keeps its trained tensors in that dtype, and Adam's small updates
(lr 1e-5 on weights of magnitude ~1e-2) round away: ESD in bf16 changed 9.6 % of the cross-attention
weights after two steps, against 99.99 % in float32. So the optimiser works on float32 masters:

    forward/backward   in the model's dtype, on the model's own tensors
    grads_to_masters   master.grad = model.grad in float32
    opt.step()         on the masters (Adam state in float32)
    masters_to_model   model tensor = master, rounded to the model's dtype

For a float32 model the masters *are* the model's tensors (nothing is copied), so float32 runs are
unchanged bit for bit. Results and checkpoints store the masters.
"""

from __future__ import annotations

import torch


class MasterWeights:
    def __init__(self, trained: dict[str, torch.nn.Parameter]):
        self.model = trained  # name -> the model's parameter (its dtype)
        # name -> float32 leaf the optimiser steps; the parameter itself when it is float32 already
        self.params = {n: p if p.dtype == torch.float32 else p.detach().float().clone().requires_grad_(True)
                       for n, p in trained.items()}

    def grads_to_masters(self) -> None:
        """Move the model's gradients onto the masters, in float32."""
        for name, p in self.model.items():
            m = self.params[name]
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()
                p.grad = None

    @torch.no_grad()
    def masters_to_model(self) -> None:
        """Copy the masters into the model's tensors, rounded to its dtype."""
        for name, p in self.model.items():
            m = self.params[name]
            if m is not p:
                p.copy_(m)

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set masters and model from saved tensors (a checkpoint's float32 masters, or the model-dtype
        tensors of a checkpoint written before masters existed)."""
        for name, m in self.params.items():
            m.copy_(tensors[name].to(m.device, m.dtype))
        self.masters_to_model()
