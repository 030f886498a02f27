"""Development sets for the out-of-distribution and drawing work (issue 16): real photos
that PyPI packages ship in their wheels (photos.py) and generated stroke drawings of the
ten classes in the app's own canvas palette and brush (drawings.py). Dev-only: the app
never imports this package; `python -m cifar_demo.ood --fit` and the tests do.
See devsets/README.md for every source photo and its licence."""
