"""Every registered method against the contract (docs/design.md §3.1), on every family its spec names:
two steps change only the tensors the method trains (the result's, or the masked neurons'), the
recorded config round-trips, the saved result re-applied to a fresh pipeline reproduces the trained
denoiser exactly, and a run cancelled after one step and resumed ends bitwise where an uninterrupted
run ends. A new method file is covered by adding its registry line and its small settings below."""

import pytest
import torch

from backends import EMBEDDED, TINY_FLUX, TINY_SDXL, denoiser, load_pipeline
from erasure import Cancelled, CancelToken, apply, erase, get_method, list_methods, resolve_config, resume
from erasure.method import required_methods

MODELS = {"sd": EMBEDDED, "sdxl": TINY_SDXL, "flux": TINY_FLUX}
# the fewest steps and smallest sizes that still run every part of each method
SMALL = {
    "esd": dict(steps=2, ddim_steps=3),
    "ap": dict(steps=2, ddim_steps=3, k_closest=8, n_centres=4),
    "uce": dict(preserve=["circle"]),
    "ca": dict(steps=2, ddim_steps=3, n_anchor_images=2, batch=2),
    "mce": dict(steps=2, ddim_steps=2, batch=2, init_logit=0.2),
    "age": dict(steps=2, ddim_steps=3, k_closest=8, n_centres=4),
}
# random-weight models know no world captions: MCE gets plain ones
PROMPTS = dict(erase_templates=["a {concept}", "a red {concept}"], keep_prompts=["a blue moon", "a green heart"])
CASES = [(m, f) for m in list_methods() for f in get_method(m).SPEC.families]


def _settings(method: str, family: str) -> dict:
    return {**SMALL[method], **(PROMPTS if method == "mce" and family != "sd" else {})}


def _states(pipe) -> dict[str, dict[str, torch.Tensor]]:
    names = ["text_encoder", "text_encoder_2", "vae"]
    out = {n: {k: v.clone() for k, v in getattr(pipe, n).state_dict().items()} for n in names if getattr(pipe, n, None)}
    out["denoiser"] = {k: v.clone() for k, v in denoiser(pipe).state_dict().items()}
    return out


def test_every_method_has_a_spec_its_class_fulfils_and_small_settings():
    assert set(list_methods()) == set(SMALL)
    for name in list_methods():
        cls = get_method(name)
        assert cls.SPEC.name == name and cls.SPEC.families and cls.SPEC.summary
        missing = [m for m in required_methods(cls.SPEC) if not callable(getattr(cls, m, None))]
        assert missing == [], f"{name} lacks {missing}"


@pytest.mark.parametrize(("method", "family"), CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_two_steps_change_only_the_trained_tensors_and_resume_exactly(method, family, tmp_path):
    model, settings = MODELS[family], _settings(method, family)
    spec = get_method(method).SPEC
    pipe = load_pipeline(model)
    before = _states(pipe)
    run = erase(model, method, ["star"], "object,fast", tmp_path / "a", pipe=pipe, checkpoint_every=1, **settings)
    result, after = run.result(), _states(pipe)

    for name in before.keys() - {"denoiser"}:  # text encoders and VAE never train
        assert all(torch.equal(v, after[name][k]) for k, v in before[name].items()), name
    changed = {k for k, v in before["denoiser"].items() if not torch.equal(v, after["denoiser"][k])}
    if spec.trains == "weights":
        assert changed and changed == {k.partition(".")[2] for k in result}
    else:  # masks: only weights of masked neurons were zeroed, and some were
        assert result and all(k.startswith("mask.") and v.dtype == torch.bool for k, v in result.items())
        assert changed and all(after["denoiser"][k].abs().sum() < before["denoiser"][k].abs().sum() for k in changed)

    record = run.record  # the config round-trips through config.json
    config = get_method(method).Config(**record["config"])
    resolved = resolve_config(method, model, "object,fast", targets=["star"], checkpoint_every=1, **settings).to_dict()
    assert config.to_dict() == record["config"] == resolved | {"precision": "float32"}  # "auto", resolved on the CPU
    fresh = apply(load_pipeline(model), run)  # save -> apply reproduces the trained denoiser
    assert all(torch.equal(v, after["denoiser"][k]) for k, v in denoiser(fresh).state_dict().items())

    if spec.closed_form:
        return  # one solve: nothing to interrupt
    token = CancelToken()

    def cancel_after_first_step(event):
        if event.kind == "step":
            token.cancel()

    with pytest.raises(Cancelled):
        erase(model, method, ["star"], "object,fast", tmp_path / "b", callback=cancel_after_first_step, cancel=token,
              checkpoint_every=1, **settings)
    resumed = resume(tmp_path / "b").result()
    assert resumed.keys() == result.keys() and all(torch.equal(resumed[k], result[k]) for k in result)


def test_a_profile_or_an_event_field_the_method_does_not_have_is_an_error(monkeypatch):
    from erasure.trainer import step_event

    ap = get_method("ap")
    monkeypatch.setitem(ap.PROFILES, "embedded", {**ap.PROFILES["embedded"], "n_centers": 8})  # a typo of n_centres
    with pytest.raises(ValueError, match=r"'embedded' profile of APConfig has unknown setting\(s\) \['n_centers'\]"):
        resolve_config("ap", "embedded", "object", targets=["star"])
    event = step_event("x", 1, 2, 0.0, {"losses": {"total": 1.0}, "metrics": {"masked_pct": 3.0}, "extra": {"k": [1]}})
    assert event.metrics == {"masked_pct": 3.0} and event.extra == {"k": [1]}
    with pytest.raises(ValueError, match=r"x reported unknown event fields \['masked'\]; put numbers in 'metrics'"):
        step_event("x", 1, 2, 0.0, {"losses": {}, "masked": 3.0})


def test_a_result_is_applied_by_its_recorded_kind(tmp_path):
    import json

    from erasure.runs import RESULT_KINDS, RunFolder

    assert set(RESULT_KINDS) == {"weights", "masks"}
    run = erase(EMBEDDED, "uce", ["star"], "object", tmp_path / "uce", checkpoint_every=0)
    assert run.record["result_kind"] == "weights"
    record = run.record | {"result_kind": "adapters"}  # a kind this version has no handler for
    (run.path / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="holds a result of kind 'adapters', which this version cannot apply"):
        apply(load_pipeline(EMBEDDED), RunFolder.open(run.path))
