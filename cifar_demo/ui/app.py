"""Assembles the tabs into one gr.Blocks and holds the launch settings."""

import json
import os

import gradio as gr

from cifar_demo.predictor import SHIPPED_METRICS, Predictor
from cifar_demo.ui import classify_tab

TITLE = "CIFAR-10 Studio"
CSS = """
.pixelated img { image-rendering: pixelated; }
.fill-image img { width: 100%; height: 100%; object-fit: contain; }
footer { display: none !important; }
"""


def shipped_accuracy_note():
    """One line on the shipped model's measured test accuracy, from its metrics file."""
    if not SHIPPED_METRICS.is_file():
        return ""
    report = json.loads(SHIPPED_METRICS.read_text())
    return (
        f" The shipped weights score **{report['accuracy'] * 100:.1f}%** on the "
        f"{report['images']:,} official test images (the blog's recipe reached 62%)."
    )


def build_app(predictor=None):
    """Builds the UI around `predictor` (the shipped weights when None)."""
    predictor = predictor if predictor is not None else Predictor.load()
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "A 9-layer convolutional network that sorts 32x32 images into CIFAR-10's ten classes: "
            "airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck." + shipped_accuracy_note()
        )
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                classify_tab.build(predictor)
    return demo


def launch_settings():
    """Keyword arguments for `demo.launch()`, fit for a public Space."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "max_file_size": "20mb",
        "share": False,
        "show_error": True,
        "css": CSS,
        "theme": gr.themes.Soft(),
    }
