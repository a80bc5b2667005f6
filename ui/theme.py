"""The app's theme: Gradio's default, with every text at WCAG AA contrast (4.5 : 1) in light and dark
mode. Gradio's own default greys its help text to 1.9 : 1 on white and puts white on orange (2.8 : 1);
the browser test measures every visible text of every tab in both modes."""

from __future__ import annotations

import gradio as gr


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate").set(
        color_accent="*primary_700",  # the selected tab's label, on white (dark mode: CSS below)
        body_text_color_subdued="*neutral_600",  # help text, slider bounds, the footer (light)
        body_text_color_subdued_dark="*neutral_400",
        button_primary_background_fill="*primary_700", button_primary_background_fill_hover="*primary_600",
        button_primary_background_fill_dark="*primary_700", button_primary_background_fill_hover_dark="*primary_600",
        button_primary_text_color="white", button_primary_text_color_dark="white",
        button_cancel_background_fill="#b91c1c", button_cancel_background_fill_dark="#b91c1c",
        button_cancel_text_color="white", button_cancel_text_color_dark="white",
    )


# The theme has no dark variant of the accent (the selected tab's label): one blue cannot reach 4.5 : 1 on
# both white and Gradio's near-black, so dark mode gets a lighter one.
CSS = ".dark { --color-accent: var(--primary-400); }" + """
/* Phones (docs/design.md §5): every tab fits one row instead of hiding behind Gradio's overflow menu; the
   before/after sheets keep a legible width and scroll sideways in their own frame (not the page); table
   headers break between words, not inside them. */
@media (max-width: 520px) {
  .tab-container button { padding: 4px 5px !important; font-size: 13px !important; }
  #results-grid .image-frame, #results-drill .image-frame, #compare-grid .image-frame {
    overflow-x: auto; display: block; justify-content: flex-start; }
  #results-grid .image-frame img, #results-drill .image-frame img, #compare-grid .image-frame img {
    min-width: 640px; max-width: none; }
}
.prose th, .prose td { word-break: normal !important; overflow-wrap: normal !important; }
/* the sheets' download and full-screen buttons sit above the image, not over its column headers */
#results-grid .icon-button-wrapper, #results-drill .icon-button-wrapper, #compare-grid .icon-button-wrapper,
#results-strips .icon-button-wrapper { position: static; justify-content: flex-end; margin-bottom: 4px; }
"""
