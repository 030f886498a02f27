"""Inside the network tab: what the model computes between the input and the label, layer by
layer, for the session's current input (current_input.CurrentInput) and the shipped model
or the session's trained one.

The whole path (one channel mosaic per stage), one channel up close (its map over the
input, its kernels, the test images that activate it most), the decision (logits and the
pooled features' contributions) and the feature-space map. The top images and the map come
from the file `evaluate --write-top-activations` writes beside the shipped weights
(cifar_demo.inside); a session's model keeps both from its run's test evaluation
(TrainedModel.top_activations: test-image indices, the pixels come from the dataset it was
tested on). Everything else is computed per input, in one pass of the network.
"""

import hashlib
import html
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np

from cifar_demo import CLASSES, data, images
from cifar_demo.artifacts import SHIPPED_WEIGHTS, inside_path_for, without_server_paths
from cifar_demo.inside import NEIGHBOURS, TopActivations, contributions, dense_weights, kernels_of, project
from cifar_demo.metrics import softmax
from cifar_demo.model import CONVOLUTIONS_PER_STAGE, DEFAULT_WIDTHS, FEATURES_LAYER
from cifar_demo.predictions import file_sha256
from cifar_demo.ui import inside_views
from cifar_demo.ui.current_input import example_inputs
from cifar_demo.ui.first_view import Deferred
from cifar_demo.ui.internals import ShownGallery, ShownImage, ShownLabel
from cifar_demo.ui.newest_view import NewestView

TAB_ID = "inside"            # this tab's id in ui/app.py: views follow a new input only while it shows
# The queue group of every view of the tab, and how many redraws may run at once for all
# sessions together (each about 100 ms on 2 cores).
VIEW_GROUP = "inside-views"
VIEW_CONCURRENCY = 2
SHIPPED = "Shipped model"
TRAINED = "Your trained model"
INPUT_SCALE = 5             # the 32x32 input shown at 160x160
TOP_SCALE = 3               # each top image and its map at 96x96
TOP_FEATURES = 12           # contributions shown
CACHED_CHANNELS = 64        # channels whose top images (with their maps) are kept drawn
NO_INPUT = ("*No input yet: upload or draw an image in the **Classify** tab, open a test image in **Mistakes**, "
            "or pick an example below.*")
PICK_CHANNEL = "### One channel up close\n*Click any channel map above to see it up close.*"
FEATURE_SPACE = "### Feature space"
NO_TRAINED = ("Your trained model is not there (none was chosen with “Use this model” in the Train tab, or it was "
              "freed with its session): showing the shipped model.")
CAM_NOTE = ("The logit of a class is the Dense kernel's column for it times the pooled features, plus a bias: "
            "the bars below are those products, and with the bias they sum to the logit. Each pooled feature is the "
            "mean of one channel of the last convolution, so spreading each product back over its channel's "
            "positions gives the class activation map (CAM); the gradient of the logit with respect to those "
            "activations is that kernel weight over the number of positions, the same at every position, which is "
            "why Grad-CAM equals CAM at this layer up to a scale the heatmap's normalisation removes (the Classify "
            "tab's heatmap is computed that way).")


def load_top(path=None, weights=SHIPPED_WEIGHTS):
    """(TopActivations, None) from the file beside `weights`, or (None, a message) when it
    is missing, unreadable or computed for other weights: the tab serves without its top
    images and map."""
    path = path or inside_path_for(weights)
    try:
        top = TopActivations.load(path)
    except ValueError as error:
        return None, f"The top images and the feature map are not available: {without_server_paths(error)}"
    if top.weights_sha256 and Path(weights).is_file() and top.weights_sha256 != file_sha256(weights):
        return None, (f"The top images and the feature map are not available: {without_server_paths(path)} was "
                      "computed for other weights (python -m cifar_demo.evaluate --write-top-activations)")
    return top, None


def layer_caption(model, name, shape):
    """"stage2_conv1_relu · 16x16x128 · stage2_conv1 73,856 + stage2_conv1_bn 512 parameters";
    short enough to stay on one or two lines on a phone. The model's own names."""
    dims = "x".join(str(size) for size in shape)
    if name.endswith("_relu"):
        conv, batch_norm = model.get_layer(name.removesuffix("_relu")), model.get_layer(name.replace("_relu", "_bn"))
        return (f"{name} · {dims} · {conv.name} {conv.count_params():,} + {batch_norm.name} "
                f"{batch_norm.count_params():,} parameters")
    return f"{name} · {dims} · averages, no parameters"


def path_layers():
    """The names Predictor.activations returns for any model build_model makes, in order."""
    names = []
    for stage in range(1, len(DEFAULT_WIDTHS) + 1):
        names += [f"stage{stage}_conv{index}_relu" for index in range(1, CONVOLUTIONS_PER_STAGE + 1)]
        names.append(f"stage{stage}_pool" if stage < len(DEFAULT_WIDTHS) else FEATURES_LAYER)
    return names


def close_up_layer(layer_names, name):
    """The convolution output a clicked row stands for: a ReLU row itself; a pooling row the
    ReLU it averages (same channels)."""
    if name.endswith("_relu"):
        return name
    return [candidate for candidate in layer_names[: layer_names.index(name)] if candidate.endswith("_relu")][-1]


def input_key(value, choice, model, page):
    """What the drawn views depend on, to skip redrawing the same thing on tab select."""
    if value is None:
        return None
    digest = hashlib.sha1(value.pixels.tobytes()).hexdigest()[:16]
    return f"{digest}|{value.source}|{choice}|{'' if model is None else model.serial}|{page}"


def chosen_model(choice, trained, shipped):
    """(predictor, whether it is the shipped one, a notice): the session's trained model
    when chosen and still there, else the shipped one (with a notice when it was chosen)."""
    if choice == TRAINED:
        if trained is None:
            return shipped, True, f"⚠️ {NO_TRAINED}"
        return trained.predictor, False, f"Showing your trained model ({html.escape(trained.summary)})."
    return shipped, True, ""


class InsideViews:
    """Draws every view of the tab for whichever model it is given; holds the shipped file
    and the feature map's background, both read once, and the shipped model's top images
    of the channels clicked lately (the app's worker threads share it: under a lock)."""

    def __init__(self, top_loader=load_top):
        self._top = Deferred(top_loader)
        self._background = Deferred(self._draw_background)
        self._top_images = OrderedDict()  # (layer, channel) -> gallery items, shipped model only
        self._lock = threading.Lock()

    def top(self):
        return self._top.get()

    def _draw_background(self):
        top, _ = self.top()
        return None if top is None else inside_views.map_background(top.map_points, top.map_labels)

    def prepare(self, predictor):
        """Reads the file, draws the map's background and traces the activations (warm-up)."""
        self._background.get()
        predictor.activations(np.zeros((32, 32, 3), np.uint8))

    def path(self, predictor, pixels, page):
        """{layer name: (mosaic image, caption)} for every stage of `pixels`, the
        256-channel layers at `page` (0 or 1), and the activations."""
        activations = predictor.activations(pixels)
        views = OrderedDict()
        for name, activation in activations.items():
            count = activation.shape[-1]
            channels = inside_views.page_channels(activation.shape, page)
            caption = layer_caption(predictor.model, name, activation.shape)
            if len(channels) < count:
                caption += f" · channels {channels.start + 1}-{channels.stop}"
            views[name] = (inside_views.mosaic(activation, channels), caption)
        return views, activations

    def decision(self, predictor, features):
        """(softmax label dict, logits bars HTML, contributions bars HTML) from the pooled
        features: the Dense layer's arithmetic done here, no second pass of the network."""
        kernel, bias = dense_weights(predictor)
        logits = np.asarray(features, np.float32) @ kernel + bias
        probabilities = softmax(logits[None], predictor.temperature)[0]
        top_class = int(np.argmax(logits))
        parts, bias = contributions(predictor, features, top_class)
        order = np.argsort(-np.abs(parts), kind="stable")[:TOP_FEATURES]
        logits_html = inside_views.bars_html(logits, CLASSES, CLASSES[top_class],
                                             "The 10 logits (before the softmax)")
        parts_html = inside_views.bars_html(
            parts[order], [f"feature {index + 1}" for index in order], None,
            f"Why {CLASSES[top_class]}: the {len(order)} largest of {len(parts)} contributions (kernel weight x "
            f"feature value) to its logit {logits[top_class]:.2f} = sum of all {len(parts)} ({parts.sum():.2f}) + "
            f"bias ({bias:.2f})")
        label = {name: float(p) for name, p in zip(CLASSES, probabilities, strict=True)}
        return label, logits_html, parts_html

    def feature_space(self, features, shipped, tops=None):
        """(map image or None, neighbours gallery items, caption), from the shipped file or a
        session model's `tops`."""
        if not shipped:
            return _trained_feature_space(features, tops)
        top, problem = self.top()
        if top is None:
            return None, [], f"*{problem}*"
        background, bounds = self._background.get()
        point = project(features, top.mean, top.axes)[:2]
        image = inside_views.map_with_marker(background, bounds, point)
        positions, distances = top.nearest(features)
        items = [(images.upscale_nearest(top.images[position], TOP_SCALE),
                  f"#{top.image_indices[position]} {CLASSES[top.image_labels[position]]} ({distance:.1f})")
                 for position, distance in zip(positions, distances, strict=True)]
        caption = (f"The pooled features of the 10,000 test images on their first two principal axes (PCA: "
                   f"{top.explained[:2].sum():.0%} of the variance), coloured by true class. Beside it: the "
                   f"{len(items)} nearest of the {len(top.image_indices):,} test images stored with the top "
                   f"activations, measured on the first {len(top.explained)} axes ({top.explained.sum():.0%} of the "
                   "variance; distance in brackets).")
        return image, items, caption

    def close_up(self, predictor, pixels, layer, channel, shipped, activations=None, tops=None):
        """(map over the input, kernels image, top images gallery items, caption) of one
        channel of a convolution output (`activations`: the input's, when already computed;
        `tops`: a session model's TrainedTopActivations)."""
        activations = predictor.activations(pixels) if activations is None else activations
        channel_map = activations[layer][:, :, channel]
        overlay = inside_views.enlarged_map(channel_map, pixels)
        kernel = kernels_of(predictor, layer, channel)
        kernels = inside_views.kernel_image(kernel)
        kind = ("an RGB patch: grey is 0, each colour the weight on that input colour" if kernel.shape[-1] == 3 else
                f"one 3x3 patch per input channel ({kernel.shape[-1]}), blue negative, red positive")
        caption = (f"**{layer}, channel {channel + 1}** (peak {float(channel_map.max()):.2f} for this input). "
                   f"Kernels of {layer.removesuffix('_relu')}, {kind} (before batch norm's per-channel scale).")
        items, note = self.top_images(predictor, layer, channel, shipped, tops)
        return overlay, kernels, items, f"### One channel up close\n{caption} {note}"

    def top_images(self, predictor, layer, channel, shipped, tops=None):
        """(gallery items, a line): the test images that activate this channel most, each
        with its own map, from the shipped file or a session model's `tops`."""
        if not shipped:
            return self._trained_top_images(predictor, layer, channel, tops)
        top, problem = self.top()
        if top is None:
            return [], problem
        if layer not in top.indices:
            return [], (f"Top test images are stored for the convolutions ({', '.join(top.layers)}); "
                        "pick a channel there.")
        key = (layer, channel)
        with self._lock:
            items = self._top_images.get(key)
        if items is None:
            indices, values = top.indices[layer][channel], top.values[layer][channel]
            items = _top_items(predictor, layer, channel, np.stack([top.image(index) for index in indices]), indices,
                               values)
            with self._lock:
                self._top_images[key] = items
                while len(self._top_images) > CACHED_CHANNELS:
                    self._top_images.popitem(last=False)
        return items, f"The {len(items)} test images that activate it most, each with its own map:"

    @staticmethod
    def _trained_top_images(predictor, layer, channel, tops):
        """top_images for a session's model, from the indices its run kept (not cached: the
        model is the session's own, and nine images cost one small batch)."""
        if tops is None:
            return [], "No top test images were kept for this model."
        if layer not in tops.indices:
            return [], (f"Top test images are kept for the convolutions ({', '.join(tops.layers)}); "
                        "pick a channel there.")
        try:
            test_images = data.load_cifar10_cached().x_test
        except ValueError as error:
            return [], f"The test images are not available: {error}"
        indices = tops.indices[layer][channel]
        items = _top_items(predictor, layer, channel, test_images[indices], indices, tops.values[layer][channel])
        among = (f"all {tops.tested:,} test images" if tops.tested == len(test_images) else
                 f"the first {tops.tested:,} test images only (the run was stopped, and tested on those)")
        return items, (f"The {len(items)} test images that activate it most for your model, among {among}, each "
                       "with its own map:")


def _trained_feature_space(features, tops):
    """feature_space for a session's model: its own map, drawn per redraw from the tested
    images' positions its run kept (a few milliseconds), neighbours among those images."""
    if tops is None:
        return None, [], "*No feature map was kept for this model.*"
    try:
        dataset = data.load_cifar10_cached()
    except ValueError as error:
        return None, [], f"*The test images are not available: {error}*"
    background, bounds = inside_views.map_background(tops.points[:, :2], dataset.y_test[: tops.tested])
    image = inside_views.map_with_marker(background, bounds, project(features, tops.mean, tops.axes)[:2])
    indices, distances = tops.nearest(features)
    items = [(images.upscale_nearest(dataset.x_test[index], TOP_SCALE),
              f"#{index} {CLASSES[dataset.y_test[index]]} ({distance:.1f})")
             for index, distance in zip(indices, distances, strict=True)]
    caption = (f"Your model's pooled features of the {tops.tested:,} test images its run was tested on, on their "
               f"first two principal axes (PCA: {tops.explained[:2].sum():.0%} of the variance), coloured by true "
               f"class. Beside it: the {len(items)} nearest of them, measured on the first {len(tops.explained)} "
               f"axes ({tops.explained.sum():.0%} of the variance; distance in brackets).")
    return image, items, caption


def _top_items(predictor, layer, channel, batch, indices, values):
    """Gallery items of top images: each image with its own map of the channel, index and peak."""
    maps = predictor.batch_activations(batch)[layer][..., channel]
    side = 32 * TOP_SCALE
    return [(inside_views.enlarged_map(channel_map, pixels, side), f"#{index} peak {value:.2f}")
            for channel_map, pixels, index, value in zip(maps, batch, indices, values, strict=True)]


def build(tab, predictor, trained_model, shared_input, shown_tab):
    """Lays out `tab` for the shipped `predictor` (a Lazy stand-in is fine) and the session's
    `trained_model` and `shared_input` states; `shown_tab` (a gr.State) holds the id of the
    tab the page shows. Returns an object whose prepare() does the
    tab's warm-up after launch (app.warm_up)."""
    views = InsideViews()
    layer_names = path_layers()
    examples = example_inputs()

    gr.Markdown("What the network computes between the 32x32 input and its answer, stage by stage, for the input "
                "you last looked at in any tab. " + inside_views.SCALE_NOTE)
    with gr.Row(equal_height=False):
        choice = gr.Radio([SHIPPED, TRAINED], value=SHIPPED, label="Model", elem_id="inside-model", scale=1)
        notice = gr.Markdown("", elem_id="inside-notice")
    with gr.Row(equal_height=False):
        input_image = ShownImage(label="Input (32x32)", interactive=False, format="png", height=180, width=180,
                                 elem_classes=["pixelated"], buttons=[], elem_id="inside-input", scale=0)
        with gr.Column():
            input_line = gr.Markdown(NO_INPUT, elem_id="inside-input-line")
            example_gallery = ShownGallery([(images.upscale_nearest(example.pixels, 2), label)
                                            for label, example in examples.items()],
                                           columns=10, height=130, allow_preview=False, format="png",
                                           label="Or pick an example (CIFAR-10 test images)", buttons=[],
                                           elem_id="inside-examples", elem_classes=["pixelated"])
    with gr.Column(visible=False) as content:  # shown once there is an input: no empty grids before
        gr.Markdown("### The whole path\nOne row per stage, named as the model's layers: click any channel map.")
        page = gr.Radio(["channels 1-128", "channels 129-256"], value="channels 1-128", elem_id="inside-page",
                        label="256-channel layers (stage 3): which half to show")
        grids, captions = {}, {}
        for name in layer_names:
            captions[name] = gr.Markdown(f"**{name}**", elem_classes=["inside-caption"])
            grids[name] = ShownImage(label=name, interactive=False, format="png", buttons=[], show_label=False,
                                     elem_id=f"inside-{name}", elem_classes=["pixelated"])
        with gr.Row(equal_height=False):
            label = ShownLabel(num_top_classes=5, label="Softmax: the probabilities (top 5)", elem_id="inside-softmax")
            logits_html = gr.HTML("", elem_id="inside-logits")
        close_line = gr.Markdown(PICK_CHANNEL, elem_id="inside-close-line")
        with gr.Row(equal_height=False):
            close_map = ShownImage(label="Its map over the input", interactive=False, format="png", height=280,
                                   width=280, buttons=[], elem_id="inside-close-map", scale=0)
            close_kernels = ShownImage(label="Its 3x3 kernels", interactive=False, format="png", buttons=[],
                                       elem_id="inside-kernels", elem_classes=["pixelated"])
        close_gallery = ShownGallery([], columns=9, height=170, allow_preview=False, format="png", buttons=[],
                                     label="Test images that activate it most", elem_id="inside-top")
        gr.Markdown(f"### The decision\n{CAM_NOTE}")
        contributions_html = gr.HTML("", elem_id="inside-contributions")
        map_line = gr.Markdown(FEATURE_SPACE, elem_id="inside-map-line")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                map_image = ShownImage(label="Test set, pooled features (PCA)", interactive=False, format="png",
                                       buttons=[], elem_id="inside-map", height=380)
                gr.HTML(inside_views.legend_html())
            neighbours = ShownGallery([], columns=4, height=300, allow_preview=False, format="png", buttons=[],
                                      label=f"Its {NEIGHBOURS} nearest test images", elem_id="inside-neighbours",
                                      scale=1)

    selected = gr.State()       # (row layer name, channel) last clicked
    drawn = gr.State()          # input_key of what is on screen

    def model_for(choice_value, model):
        return chosen_model(choice_value, model, predictor)

    def close_outputs(chosen, shipped, model, pixels, selection, activations=None):
        if selection is None:
            return None, None, [], PICK_CHANNEL
        row, channel = selection
        layer = close_up_layer(layer_names, row)
        activations = chosen.activations(pixels) if activations is None else activations
        if channel >= activations[layer].shape[-1]:  # a narrower model than the one clicked
            return None, None, [], PICK_CHANNEL
        return views.close_up(chosen, pixels, layer, channel, shipped, activations,
                              None if shipped else model.top_activations)

    def redraw(value, choice_value, model, page_value, selection):
        chosen, shipped, note = model_for(choice_value, model)
        if value is None:
            return (note, None, NO_INPUT, gr.update(visible=False), *[f"**{name}**" for name in layer_names],
                    *[None] * len(layer_names), None, "", "", None, [], FEATURE_SPACE, None, None, [], PICK_CHANNEL,
                    None)
        pixels = value.pixels
        path, activations = views.path(chosen, pixels, 1 if page_value.endswith("256") else 0)
        probabilities, logits, parts = views.decision(chosen, activations[FEATURES_LAYER])
        map_value, neighbour_items, map_caption = views.feature_space(activations[FEATURES_LAYER], shipped,
                                                                      None if shipped else model.top_activations)
        map_caption = f"{FEATURE_SPACE}\n{map_caption}"
        return (note, images.upscale_nearest(pixels, INPUT_SCALE), f"Input: **{html.escape(value.source)}**.",
                gr.update(visible=True), *[f"**{path[name][1]}**" for name in layer_names],
                *[path[name][0] for name in layer_names],
                probabilities, logits, parts, map_value, neighbour_items, map_caption,
                *close_outputs(chosen, shipped, model, pixels, selection, activations),
                input_key(value, choice_value, model, page_value))

    def refresh(value, choice_value, model, page_value, selection, drawn_key):
        """The tab opened: drawn again unless it shows this input already. Either way it takes
        a ticket: any redraw still running asks for something older than what is shown."""
        if drawn_key is not None and drawn_key == input_key(value, choice_value, model, page_value):
            return gr.skip()
        return redraw(value, choice_value, model, page_value, selection)

    def follow(value, choice_value, model, page_value, selection, shown):
        """A new input or trained model, drawn only while this tab shows (`showing`, and
        `showing_trained` for a model): opening the tab catches up."""
        return redraw(value, choice_value, model, page_value, selection)

    def showing(value, choice_value, model, page_value, selection, shown):
        return shown == TAB_ID

    def showing_trained(value, choice_value, model, page_value, selection, shown):
        return shown == TAB_ID and choice_value == TRAINED

    def pick(row):
        def handler(value, choice_value, model, page_value, event: gr.SelectData):
            if value is None or not isinstance(event.index, (list, tuple)):
                return [gr.skip()] * 5
            chosen, shipped, _ = model_for(choice_value, model)
            activations = chosen.activations(value.pixels)
            channels = inside_views.page_channels(activations[row].shape, 1 if page_value.endswith("256") else 0)
            channel = inside_views.channel_at(*event.index, channels, features=row == FEATURES_LAYER)
            if channel is None:
                return [gr.skip()] * 5
            return (*close_outputs(chosen, shipped, model, value.pixels, (row, channel), activations), (row, channel))
        return handler

    def pick_example(event: gr.SelectData):
        return list(examples.values())[event.index]

    outputs = [notice, input_image, input_line, content, *captions.values(), *grids.values(), label, logits_html,
               contributions_html, map_image, neighbours, map_line, close_map, close_kernels, close_gallery,
               close_line, drawn]
    state_inputs = [shared_input, choice, trained_model, page, selected]
    # One queue group for every view of the tab, so that no client can run more than
    # VIEW_CONCURRENCY redraws at once through the queue (private events are callable by fn_index).
    # The group does not keep a page's redraws in order: one that ends after a newer one
    # started shows nothing (newest). A channel's close-up, a part of the page, is left out.
    group = {"api_visibility": "private", "concurrency_id": VIEW_GROUP, "concurrency_limit": VIEW_CONCURRENCY}
    newest = NewestView()
    shared_input.change(newest.only(follow, when=showing), inputs=[*state_inputs, shown_tab],
                        outputs=outputs, trigger_mode="always_last", **group)
    for control in (choice, page):
        control.input(newest.only(redraw), inputs=state_inputs, outputs=outputs,
                      trigger_mode="always_last", **group)
    trained_model.change(newest.only(follow, when=showing_trained), inputs=[*state_inputs, shown_tab],
                         outputs=outputs, **group)
    tab.select(newest.only(refresh), inputs=[*state_inputs, drawn], outputs=outputs, **group)
    for name, grid in grids.items():
        grid.select(pick(name), inputs=state_inputs[:4], outputs=[close_map, close_kernels, close_gallery,
                                                                  close_line, selected], **group)
    example_gallery.select(pick_example, outputs=shared_input, api_visibility="private")
    return _WarmUp(views, predictor)


class _WarmUp:
    """The tab's part of app.warm_up: what a first visitor would otherwise wait for."""

    def __init__(self, views, predictor):
        self._views, self._predictor = views, predictor

    def prepare(self):
        self._views.prepare(self._predictor)
