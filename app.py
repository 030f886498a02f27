"""Entry point: `python app.py` serves CIFAR-10 Studio on http://127.0.0.1:7860."""

from cifar_demo.ui import build_app, launch_settings

demo = build_app()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4, max_size=64).launch(**launch_settings())
