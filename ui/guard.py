"""What stands between a visitor and the server: every handler's errors become one clear message
(no traceback for the visitor, one log line for the owner), no server path ever appears in a
message, and Gradio's own input conversion cannot answer with an empty or generic error.

    @handler
    def generate_grid(...): ...          # raise ValueError("what to change") for bad input
"""

from __future__ import annotations

import functools
import html
import logging
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

import gradio as gr
from gradio.exceptions import InvalidPathError

from backends import ModelUnavailableError
from backends.cancel import Cancelled

log = logging.getLogger("cse.app")
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, PermissionError, ModelUnavailableError,
               Cancelled)
MAX_MESSAGE = 600  # characters; a message is a sentence or two, not a dump
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`,;()<>\]\[]+)+/?")
_roots: dict[str, str] = {}  # server folders -> the word shown instead


def register_root(path: str | Path, label: str) -> None:
    """A server folder whose path is replaced by `label` in every message (jobs folder, uploads ...)."""
    for p in {str(path), os.path.realpath(path)}:
        if len(p) > 1:
            _roots[p.rstrip("/")] = label


for _path, _label in ((Path(__file__).resolve().parent.parent, "the app"), (tempfile.gettempdir(), "tmp"),
                      (gr.utils.get_upload_folder(), "uploads"), (sys.prefix, "python"), (Path.home(), "home")):
    register_root(_path, _label)


def scrub(message: str) -> str:
    """The message without server paths: known folders by name, any other absolute path by its last part."""
    for root in sorted(_roots, key=len, reverse=True):
        message = message.replace(root + "/", "").replace(root, _roots[root])
    message = _ABSOLUTE.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", message)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _text(e: BaseException) -> str:
    text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
    return text or type(e).__name__


def message_error(text: str, where: str) -> gr.Error:
    """A gr.Error for the visitor and one log line. Gradio shows the message as HTML and it may quote
    the visitor's input, so <, > and & are escaped (quotes stay readable for API clients)."""
    text = scrub(text).strip() or "the request was refused; check its values against 'Use via API'"
    log.warning("%s: %s", where, text)
    return gr.Error(html.escape(text, quote=False), print_exception=False)


_MARKDOWN = re.compile(r"([\\`*_\[\]()!#|~>])")


_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def md_text(text: str) -> str:
    """A user-supplied string (a concept, a job title, a file name) made safe to put in Markdown: shown as
    the same characters, never as a link, image, emphasis or HTML (a zero-width space after "://" and
    "www" keeps Markdown from turning a bare address into a link)."""
    text = _MARKDOWN.sub(r"\\\1", html.escape(scrub(str(text)), quote=False))
    return _AUTOLINK.sub(lambda m: m.group(1)[0] + "\u200b" + m.group(1)[1:], text)


def handler(fn):
    """Bad input and refused requests become a message (gr.Error) and one log line; a bug becomes
    'internal error' with a reference to the traceback in the server log. Nothing reaches the visitor
    unscrubbed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            raise message_error(str(e.message), fn.__name__) from None
        except USER_ERRORS as e:
            raise message_error(_text(e), fn.__name__) from None
        except Exception as e:  # noqa: BLE001 - a bug: the visitor gets a reference, the log the traceback
            ref = uuid.uuid4().hex[:8]
            log.exception("internal error %s in %s", ref, fn.__name__)
            raise gr.Error(f"internal error ({type(e).__name__}, reference {ref}); the server log has the details",
                           print_exception=False) from None

    return wrapper


class Blocks(gr.Blocks):
    """gr.Blocks whose input conversion errors (a list sent for a number, a dict for a file) answer
    with one message naming the endpoint, like the handlers' own errors, instead of a generic error."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        if len(inputs) < len(block_fn.inputs):  # Gradio ignores extra values; too few it cannot fill
            labels = ", ".join(str(getattr(b, "label", None) or b.get_block_name()) for b in block_fn.inputs)
            raise message_error(f"this endpoint takes {len(block_fn.inputs)} values ({labels}), got {len(inputs)}",
                                block_fn.name)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error as e:
            raise message_error(str(e.message), block_fn.name) from None
        except InvalidPathError:  # a FileData naming a server file instead of an upload
            raise message_error("files must be uploaded from your computer; paths on the server are not accepted",
                                block_fn.name) from None
        except Exception:  # noqa: BLE001 - Gradio refused the value's type or form
            raise message_error(f"{_culprit(block_fn, inputs)}: a value of the wrong type or form; send the types "
                                "listed under 'Use via API' for this endpoint", block_fn.name) from None


def _culprit(block_fn, inputs) -> str:
    """The label of the first input whose value its component's data model refuses."""
    for block, value in zip(block_fn.inputs, inputs):
        model = getattr(block, "data_model", None)
        if model is None or value is None:
            continue
        try:
            model.model_validate(value, context={"validate_meta": True})
        except Exception:  # noqa: BLE001 - this is the one
            return str(getattr(block, "label", None) or block.get_block_name())
    return "an input"


class Number(gr.Number):
    """A number box whose value reaches the handler as sent, so ui.inputs checks it and a bad API
    value ("abc", NaN, 2**70) gets a message naming the field instead of Gradio's TypeError."""

    def preprocess(self, payload):
        return payload

    def get_block_name(self) -> str:
        return "number"


class Slider(gr.Slider):
    """A slider whose value reaches the handler as sent (see Number)."""

    def preprocess(self, payload):
        return payload

    def get_block_name(self) -> str:
        return "slider"
