"""UCE — Unified Concept Editing (Gandikota et al. 2024), a closed-form baseline (docs/design.md §3).

For every cross-attention key/value projection W [out, d] (`attn2.to_k`, `attn2.to_v`):

    W' = (lam W + s_e sum_i v*_i c_i^T + s_p sum_j W c_j c_j^T) (lam I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1

with c_i the text-encoder outputs [d] of an erased prompt from its last word token to the end of the
context (end-of-text and padding tokens carry the concept too: the reference edits all of them; the
last word token alone changed nothing on the embedded model, ESR-1 0 %), v*_i = W g_i the projection of
the guide prompt's outputs at the same positions counted from its own last word (default "": erased
prompts are mapped to what the null prompt gives), and c_j the same tokens of the preserved prompts.
No optimisation: one solve, then the usual run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from backends.prompts import fill

from ..config import EraseConfig
from ..method import ClosedForm, MethodSpec


@dataclass
class UCEConfig(EraseConfig):
    SCALE_STEPS = False  # one solve for every target at once, whatever the number of targets
    param_group: str = "kv"  # UCE edits attn2.to_k / attn2.to_v only
    steps: int = 1  # one closed-form solve
    guide: str = ""  # concept the erased ones are mapped to ("" = the null prompt)
    preserve: list[str] = field(default_factory=list)  # concepts whose projections stay as they are
    lam: float = 0.5  # weight of the original W (keeps everything else close)
    erase_scale: float = 1.0  # s_e
    preserve_scale: float = 1.0  # s_p

    def validate(self) -> None:
        super().validate()
        if self.param_group != "kv":
            raise ValueError(f"UCE edits attn2.to_k/to_v: param_group must be 'kv', got {self.param_group!r}")
        if self.steps != 1:
            raise ValueError(f"UCE is one closed-form solve: steps must be 1, got {self.steps}")
        if not self.lam > 0 or self.erase_scale < 0 or self.preserve_scale < 0:
            raise ValueError("UCE needs lam > 0 and erase_scale, preserve_scale >= 0")
        if any(not isinstance(p, str) or not p.strip() for p in self.preserve):
            raise ValueError("preserve must be a list of non-empty concepts")
        overlap = {p.strip().lower() for p in self.preserve} & {t.strip().lower() for t in self.targets}
        if overlap:
            raise ValueError(f"{sorted(overlap)} cannot be both erased and preserved")


PRESETS: dict[str, dict] = {
    "object": {},
    "style": {},
    "nudity": {},
    "reference": {},  # lam 0.5, s_e = s_p = 1, guide "" (the paper's erasure setting)
    "fast": {},  # already instantaneous
}


@torch.no_grad()
def token_contexts(family, pipe, old: str, new: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned cross-attention inputs ([n, d], [n, d]) of `old` and `new`, each from its last word token
    (the token before end-of-text; the start token for "") to the end of the context, cut to the
    same length n. The family encodes (SDXL: both encoders side by side); word positions come from
    the first tokenizer (both SDXL tokenizers split a prompt alike)."""
    tok = pipe.tokenizer([old, new], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    hidden = family.encode(pipe, [old, new])["emb"]  # [2, L, d]
    last = [max(0, int(m.sum()) - 2) for m in tok.attention_mask]
    n = hidden.shape[1] - max(last)
    return hidden[0, last[0] : last[0] + n], hidden[1, last[1] : last[1] + n]


def uce_solve(W: torch.Tensor, c_e: torch.Tensor, g: torch.Tensor, c_p: torch.Tensor, lam: float, s_e: float,
              s_p: float) -> torch.Tensor:
    """W [out, d]; c_e, g [n_e, d] (erased, guides); c_p [n_p, d] (preserved) -> the edited W'.
    Solved in float64: the Gram matrices of CLIP features are badly conditioned."""
    W64, ce, gg, cp = (x.double() for x in (W, c_e, g, c_p))
    v_star = gg @ W64.T  # [n_e, out]: v*_i = W g_i
    left = lam * W64 + s_e * v_star.T @ ce + s_p * (W64 @ cp.T) @ cp  # [out, d]
    right = lam * torch.eye(W.shape[1], dtype=torch.float64, device=W.device) + s_e * ce.T @ ce + s_p * cp.T @ cp
    return torch.linalg.solve(right, left.T).T.to(W.dtype)  # left @ right^-1 (right is symmetric)


class UCE:
    Config = UCEConfig
    PRESETS = PRESETS
    PROFILES: dict[str, dict] = {}
    SPEC = MethodSpec("uce", "UCE: closed-form edit of the cross-attention keys and values (Gandikota et al. 2024)",
                      families=("sd", "sdxl"), closed_form=True)

    def __init__(self, ctx):
        self.ctx, cfg = ctx, ctx.config
        guide = _as_prompt(cfg.guide, cfg.template)
        pairs = [token_contexts(ctx.family, ctx.pipe, prompt, guide) for prompt in cfg.prompts()]
        self.c_e = torch.cat([c for c, _ in pairs])  # [n_e, d]: erased tokens
        self.g = torch.cat([g for _, g in pairs])  # [n_e, d]: the guide's tokens at the same positions
        kept = [token_contexts(ctx.family, ctx.pipe, p, p)[0] for p in (_as_prompt(q, cfg.template) for q in cfg.preserve)]
        self.c_p = torch.cat(kept) if kept else self.c_e.new_zeros(0, self.c_e.shape[1])  # [n_p, d]

    @torch.no_grad()
    def solve(self) -> dict:
        cfg = self.ctx.config
        for name, W in self.ctx.master.params.items():  # float32 (erasure.master); the loop copies them in
            if name.endswith(".weight"):
                W.copy_(uce_solve(W, self.c_e, self.g, self.c_p, cfg.lam, cfg.erase_scale, cfg.preserve_scale))
        return {"losses": {}, "message": f"edited {len(self.ctx.trained)} key/value projections"}

    def snapshot_inputs(self) -> dict:
        return {"ce": self.ctx.embed(self.ctx.config.prompts()[:1])}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _as_prompt(concept: str, template: str) -> str:
    return fill(template, concept.strip()) if concept.strip() else ""


METHOD: type[ClosedForm] = UCE  # checked against the protocol (erasure.method)
