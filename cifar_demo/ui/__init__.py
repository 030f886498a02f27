"""The Gradio app: one module per tab, assembled here. Nothing outside ui/ imports Gradio."""

from cifar_demo.ui.app import build_app, launch_settings

__all__ = ["build_app", "launch_settings"]
