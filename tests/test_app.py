"""The app's first tab: it builds, generates a grid, and rejects bad input with a clear message."""

import gradio as gr
import numpy as np
import pytest

import app


def test_ui_builds_with_named_generate_endpoint():
    demo = app.build_ui()
    names = {d.api_name for d in demo.fns.values()}
    assert "generate" in names


def test_generate_grid_returns_enlarged_grid(embedded_pipe):
    img = app.generate_grid("embedded", "a red star", 0, 4, 10, 5.0)
    assert img.dtype == np.uint8 and img.ndim == 3
    assert img.shape[0] >= 256 and img.shape[1] == 4 * img.shape[0]  # one row of four tiles
    again = app.generate_grid("embedded", "a red star", 0, 4, 10, 5.0)
    assert np.array_equal(img, again)


@pytest.mark.parametrize(
    "args, message",
    [
        (("embedded", "   ", 0, 4, 10, 5.0), "Enter a prompt"),
        (("embedded", "a red star", 0, 0, 10, 5.0), "between 1 and"),
        (("embedded", "a red star", 0, 4, 0, 5.0), "steps"),
        (("no-such/model-anywhere", "a red star", 0, 4, 10, 5.0), "not available"),
    ],
)
def test_bad_input_gives_a_clear_error(args, message):
    with pytest.raises(gr.Error, match=message):
        app.generate_grid(*args)
