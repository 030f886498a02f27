"""Entry point: `python app.py` serves CIFAR-10 Studio on http://127.0.0.1:7860."""

import logging

from cifar_demo.ui import build_app, launch_settings

demo = build_app()

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("cifar_demo").setLevel(logging.INFO)  # runs and freed sessions; libraries stay quiet
    demo.launch(**launch_settings())
