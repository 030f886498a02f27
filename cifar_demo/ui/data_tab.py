"""Data tab: CIFAR-10 as the blog first looked at it, and as the training engine sees it.

It opens from weights/train_sample.npz (100 real training images, the class counts and
channel statistics of the whole set), so nothing is downloaded to show it; its first
view is computed when the app is built, except its two figures, drawn once after launch
and sent when a page first opens the tab (first_view.FirstView: they would be most of the
page config). Shuffling and browsing past the sample use the full dataset, loaded once
per server (data.load_cifar10_cached, shared with the other tabs).
"""

import gradio as gr
import numpy as np
import pandas as pd

from cifar_demo import CLASSES, data, images, plots
from cifar_demo.model import CIFAR10_MEAN, CIFAR10_STD
from cifar_demo.training import TrainConfig, augment_images
from cifar_demo.ui.first_view import FirstView
from cifar_demo.ui.internals import ShownGallery, ShownImage, ShownPlot

RECIPE = TrainConfig()      # the recipe's crop and flip, what the preview augments with (drawing style: off)
PREVIEW_COUNT = 16          # augmented versions shown, as a 4x4 mosaic
PREVIEW_COLUMNS = 4
PREVIEW_SCALE = 4           # each 32x32 version drawn at 128x128
PREVIEW_GAP = 8             # white pixels between versions
ORIGINAL_SCALE = 6          # the original at 192x192
PAGE_SIZE = 40              # images per page of a class (5 rows of 8)
GALLERY_COLUMNS = 8
THUMBNAIL_SCALE = 4         # 32x32 -> 128x128, nearest neighbour
CHANNELS = ("red", "green", "blue")
RECIPE_TEXT = (
    f"**What training sees.** Every time an image comes round (once an epoch), `augment_images` in "
    f"`cifar_demo/training.py` pads it by {RECIPE.crop_padding} pixels on each side (mirroring the border), "
    f"cuts a random 32x32 window out of it and mirrors it left-to-right half of the time. These are "
    f"{PREVIEW_COUNT} outputs of that same function. Click any image above to preview it."
)


def augmentation_preview(image, seed, count=PREVIEW_COUNT):
    """`count` versions of one uint8 (32, 32, 3) image from the training engine's own
    augmentation, with the recipe's settings and a numpy Generator seeded with `seed`."""
    batch = np.repeat(np.asarray(image, dtype=np.uint8)[None], count, axis=0)
    return augment_images(batch, np.random.default_rng(seed), padding=RECIPE.crop_padding, flip=True)


def mosaic(tiles, columns=PREVIEW_COLUMNS, scale=PREVIEW_SCALE, gap=PREVIEW_GAP):
    """Small images laid out in rows of `columns` on white, each enlarged `scale` times."""
    tiles = np.asarray(tiles)
    size = tiles.shape[1] * scale
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * size + (rows - 1) * gap, columns * size + (columns - 1) * gap, 3), 255, dtype=np.uint8)
    for position, tile in enumerate(tiles):
        row, col = divmod(position, columns)
        top, left = row * (size + gap), col * (size + gap)
        sheet[top : top + size, left : left + size] = images.upscale_nearest(tile, scale)
    return sheet


def statistics_table(sample):
    """Per-channel mean and std measured on the training set beside the constants the
    model's first layer normalises with (cifar_demo/model.py): they should agree."""
    return pd.DataFrame({
        "channel": list(CHANNELS),
        "mean (0-255)": [f"{value:.2f}" for value in sample.mean],
        "std (0-255)": [f"{value:.2f}" for value in sample.std],
        "model subtracts": [f"{value:.2f}" for value in CIFAR10_MEAN],
        "model divides by": [f"{value:.2f}" for value in CIFAR10_STD],
    })


def sample_grid(pictures, labels, title):
    return plots.image_grid(pictures, [CLASSES[int(label)] for label in labels], title)


def full_dataset_ready():
    """True when the full set is on this machine (no download needed to read it); a
    CIFAR10_PATH naming nothing leaves the visitor browsing the sample."""
    return data.on_this_machine()


def class_page(class_name, page, sample, use_full):
    """One page of a class's training images: (gallery items, page line, (index, pixels)
    shown, page). From the full training set with `use_full`, else from the sample, whose
    one page is numbered -1 so that "Next" opens the full set's first page once it is here."""
    label = CLASSES.index(class_name)
    if use_full:
        dataset = data.load_cifar10_cached()
        indices = np.flatnonzero(dataset.y_train == label)
        pixels = dataset.x_train[indices]
        where = "training images"
    else:
        members = np.flatnonzero(sample.labels == label)
        indices, pixels = sample.indices[members], sample.images[members]
        where = "images of the shipped sample" + (
            " · pick a class or turn the page to browse the full set" if full_dataset_ready()
            else " (the full set is not on this machine)")
    pages = max(1, -(-len(indices) // PAGE_SIZE))
    page = min(max(0, int(page)), pages - 1)
    window = slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE)
    shown = [(int(index), picture) for index, picture in zip(indices[window], pixels[window], strict=True)]
    items = [(images.upscale_nearest(picture, THUMBNAIL_SCALE), f"#{index}") for index, picture in shown]
    line = (f"**{class_name}**: {page * PAGE_SIZE + 1}-{page * PAGE_SIZE + len(shown)} of {len(indices):,} "
            f"{where} · page {page + 1} of {pages}")
    return items, line, shown, page if use_full else -1


def preview_views(index, picture, seed):
    """The original (enlarged), the 16 augmented versions, and a line saying which."""
    caption = f"Training image #{index}, seed {seed}: press “New draw” for another {PREVIEW_COUNT}."
    return (images.upscale_nearest(picture, ORIGINAL_SCALE), mosaic(augmentation_preview(picture, seed)), caption)


def first_figures(sample):
    """The blog's grid of the sample and the class balance: what the tab opens with."""
    return (
        sample_grid(sample.images, sample.labels,
                    f"{len(sample.images)} training images, {data.SAMPLE_PER_CLASS} per class (the shipped sample)"),
        plots.class_balance_figure(sample.train_counts, sample.test_counts,
                                   title="Images per class: every class equally represented"),
    )


def build(tab, sample=None):
    """Lays out `tab` with its first view from `sample` (the shipped one by default); returns
    the FirstView that fills its figures."""
    sample = sample if sample is not None else data.DataSample.load()
    first_class = CLASSES[0]
    first_items, first_line, first_shown, _ = class_page(first_class, 0, sample, use_full=False)
    first_index, first_picture = first_shown[0]
    first_original, first_preview, first_caption = preview_views(first_index, first_picture, 0)

    gr.Markdown(
        f"CIFAR-10 has **{sample.train_counts.sum():,} training** and **{sample.test_counts.sum():,} test** "
        "colour images of 32x32 pixels in ten classes. The blog's first step was to look at them:"
    )
    grid = ShownPlot(show_label=False, format="png", elem_id="data-grid")
    with gr.Row():
        shuffle = gr.Button("Shuffle", variant="secondary", scale=0, min_width=140, elem_id="shuffle")
        shuffle_line = gr.Markdown(
            "*A fixed sample shipped with the app; shuffle draws another 100 from the full training set "
            "(downloading it first, about 170 MB once, where it is not on this machine).*",
            elem_id="shuffle-line",
        )

    gr.Markdown("### Images by class")
    with gr.Row():
        class_name = gr.Dropdown(list(CLASSES), value=first_class, label="Class", scale=1)
        page_line = gr.Markdown(first_line, elem_id="class-page")
    gallery = ShownGallery(first_items, columns=GALLERY_COLUMNS, format="png", height="auto", allow_preview=False,
                         elem_id="class-gallery", elem_classes=["pixelated"], buttons=[],
                         label="Click an image to preview its augmentations below")
    with gr.Row():
        previous_page = gr.Button("← Previous", size="sm", scale=0)
        next_page = gr.Button("Next →", size="sm", scale=0)

    gr.Markdown("### Augmentation preview")
    gr.Markdown(RECIPE_TEXT)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            original = ShownImage(first_original, label="Original", interactive=False, height=220, format="png",
                                elem_classes=["pixelated"], buttons=[],
                                alt_text="The chosen training image, enlarged (named in the line below)")
            preview_caption = gr.Markdown(first_caption, elem_id="preview-caption")
            new_draw = gr.Button("New draw", size="sm", elem_id="new-draw")
        with gr.Column(scale=2):
            preview = ShownImage(first_preview, label=f"{PREVIEW_COUNT} versions as training sees them",
                               interactive=False, format="png", elem_classes=["pixelated"],
                               elem_id="augmentation-preview", buttons=[],
                               alt_text=f"{PREVIEW_COUNT} randomly augmented versions of the chosen training image")

    gr.Markdown("### Balance and normalisation")
    with gr.Row(equal_height=False):
        balance = ShownPlot(show_label=False, format="png", elem_id="class-balance")
        with gr.Column():
            gr.Dataframe(statistics_table(sample), interactive=False,
                         label="Per-channel statistics of the training pixels")
            gr.Markdown("The model's first layer subtracts each channel's mean and divides by its standard deviation, "
                        "so it takes raw 0-255 pixels and no caller can forget to normalise.")

    shown = gr.State(first_shown)
    page = gr.State(-1)  # the sample's page (see class_page)
    chosen = gr.State((first_index, first_picture))
    seed = gr.State(0)

    def shuffle_grid():
        """Another 100 random training images, 10 per class; shows the download first if needed."""
        def downloading(done, total):
            return gr.skip(), f"Downloading CIFAR-10: {done / 1e6:.0f} of {total / 1e6:.0f} MB (only once)..."

        try:
            dataset = yield from data.load_cifar10_showing(downloading)
        except ValueError as error:
            yield gr.skip(), f"*No other images to show: {error}*"
            raise gr.Error(str(error), title="CIFAR-10 is not available") from None
        indices = data.sample_indices(dataset.y_train, np.random.default_rng())
        yield (sample_grid(dataset.x_train[indices], dataset.y_train[indices],
                           f"{len(indices)} random training images, {data.SAMPLE_PER_CLASS} per class"),
               f"*Drawn at random from the {len(dataset.y_train):,} training images: shuffle again for more.*")

    def show_class(name, page_value=0):
        try:
            return class_page(name, page_value, sample, use_full=full_dataset_ready())
        except ValueError as error:
            raise gr.Error(str(error), title="CIFAR-10 is not available") from None

    def turn(step):
        def handler(name, page_value):
            return show_class(name, page_value + step)
        return handler

    def pick(shown_value, event: gr.SelectData):
        index, picture = shown_value[event.index]
        return (index, picture), 0, *preview_views(index, picture, 0)

    def redraw(chosen_value, seed_value):
        index, picture = chosen_value
        return seed_value + 1, *preview_views(index, picture, seed_value + 1)

    page_outputs = [gallery, page_line, shown, page]
    shuffle.click(shuffle_grid, outputs=[grid, shuffle_line], api_visibility="private", concurrency_limit=1)
    class_name.input(show_class, inputs=class_name, outputs=page_outputs, api_visibility="private")
    previous_page.click(turn(-1), inputs=[class_name, page], outputs=page_outputs, api_visibility="private")
    next_page.click(turn(+1), inputs=[class_name, page], outputs=page_outputs, api_visibility="private")
    gallery.select(pick, inputs=shown, outputs=[chosen, seed, original, preview, preview_caption],
                   api_visibility="private")
    new_draw.click(redraw, inputs=[chosen, seed], outputs=[seed, original, preview, preview_caption],
                   api_visibility="private", show_progress="hidden")
    return FirstView(tab, [grid, balance], lambda: first_figures(sample))
