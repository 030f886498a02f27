"""Robustness tab: what noise, blur, light, JPEG, rotation, shifts, occlusion and adversarial
pixels do to the model's answer on one input, and its accuracy under each corruption.

One corruption at a time, picked from the twelve, with one severity slider: the report and
its curves measure each corruption alone, so the view shows the same thing, and one slider
stays usable on a phone where twelve would fill the screen. The picture the model sees is
the view to click: a click places the occlusion's grey square there.
"""

import gradio as gr

from cifar_demo import data
from cifar_demo.adversarial import MAX_EPSILON
from cifar_demo.artifacts import SHIPPED_WEIGHTS, corruptions_path_for
from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, MAX_SEVERITY
from cifar_demo.plots import corruption_curves
from cifar_demo.ui import robustness_views as views
from cifar_demo.ui.current_input import example_inputs
from cifar_demo.ui.explain_views import EXPLAIN_LABEL
from cifar_demo.ui.first_view import FirstView
from cifar_demo.ui.internals import ShownImage, ShownPlot
from cifar_demo.ui.newest_view import NewestView

TAB_ID = "robustness"        # this tab's id in ui/app.py: views follow a new input only while it shows
# The queue group of every view of the tab, and how many may run at once for all sessions
# together (a corruption view is tens of milliseconds, an attack about a second).
VIEW_GROUP = "robustness-views"
VIEW_CONCURRENCY = 2
CORRUPT = "Corruptions"
ATTACK = "Adversarial pixels"
FIRST_SEVERITY = 3
SEEN_LABEL = "The model's input (click: grey square)"
ATTACKED_LABEL = "The attacked input"
PROGRESS = gr.Progress()  # Gradio passes a live tracker to a handler whose argument defaults to one
NO_MODEL = "*Train a model in the Train tab and press “Use this model”: its curves can then be computed here.*"


def build(tab, predictor, detector, trained_model, shared_input, shown_tab):
    """Lays out `tab` around the shipped `predictor` and its OOD `detector` (first_view.Lazy
    stand-ins are fine: nothing reads them before an event); the input is the session's
    `shared_input` (a CurrentInput gr.State) or an example, and `trained_model` (the
    session's gr.State) gets its own curves on request; `shown_tab` (a gr.State) holds the
    id of the tab the page shows. Returns the FirstView that draws the
    shipped model's curves."""
    examples = example_inputs()
    running = views.OneAtATime()
    newest = NewestView()  # a page's views land in the order they were asked for
    shipped_subset = views.SubsetReports()

    def no_input(seen_label):
        return (views.NO_INPUT, gr.update(value=None, label=seen_label), None,
                gr.update(value=None, label=EXPLAIN_LABEL), "")

    def corruption_views(choice, corruption, severity, current, center):
        """The chosen input corrupted and the model's answer on it (the /corrupt endpoint:
        input, corruption, severity). Its values come unchecked by Gradio, so every bad
        one gets an error that names it, and nothing on the page changes."""
        try:
            shown = views.chosen_input(choice, current, examples)
        except ValueError as error:
            raise gr.Error(str(error), title="Unknown input") from None
        try:
            name = views.corruption_name(corruption)
        except ValueError as error:
            raise gr.Error(str(error), title="Unknown corruption") from None
        try:
            level = views.severity_level(severity)
        except ValueError as error:
            raise gr.Error(str(error), title="Severity out of range") from None
        if shown is None:
            return no_input(SEEN_LABEL)
        changed = views.corrupt(shown.pixels, name, level, center)
        enlarged, label, overlay, caption, notice = views.answer_views(predictor, detector, changed)
        return (views.corruption_line(shown, name, level), gr.update(value=enlarged, label=SEEN_LABEL), label,
                gr.update(value=overlay, label=caption), notice)

    def attack_views(choice, current, method, epsilon, previous):
        """The chosen input attacked at `epsilon`, the model's new answer, the perturbation
        and the smallest epsilon that flips it (all eight epsilons computed once per input)."""
        shown = views.chosen_input(choice, current, examples)
        if shown is None:
            return (*no_input(ATTACKED_LABEL), gr.update(value=None, visible=True), None, gr.update(visible=False))
        result = views.attack(predictor, shown.pixels, method, previous)
        epsilon = int(epsilon)
        attacked = result.attacked[epsilon - 1]
        enlarged, label, overlay, caption, notice = views.answer_views(predictor, detector, attacked)
        change, change_caption = views.perturbation_view(result.clean, attacked, epsilon)
        return (views.attack_line(shown, result, method, epsilon), gr.update(value=enlarged, label=ATTACKED_LABEL),
                label, gr.update(value=overlay, label=caption), notice,
                gr.update(value=change, label=change_caption, visible=True), result, gr.update(visible=True))

    def refresh(mode, choice, current, corruption, severity, center, method, epsilon, previous):
        """Every view for the mode shown, after the input or the mode changed; without an
        input, only the hint (the pictures and the answer are hidden, not shown empty)."""
        if mode == ATTACK:
            return attack_views(choice, current, method, epsilon, previous)
        shown = views.chosen_input(choice, current, examples)
        return (*corruption_views(choice, corruption, severity, current, center), gr.update(visible=False),
                gr.skip(), gr.update(visible=shown is not None))

    def follow_input(shown, mode, choice, current, corruption, severity, center, method, epsilon, previous):
        """A new current input, drawn only while this tab shows (a drawing changes it at
        every stroke; `when=showing` below): opening the tab catches up (tab.select)."""
        return refresh(mode, choice, current, corruption, severity, center, method, epsilon, previous)

    def showing(shown, *inputs):
        return shown == TAB_ID

    def switch_mode(mode, choice, current, corruption, severity, center, method, epsilon, previous):
        return (gr.update(visible=mode == CORRUPT), gr.update(visible=mode == ATTACK),
                *refresh(mode, choice, current, corruption, severity, center, method, epsilon, previous))

    def corrupting(mode, *inputs):
        return mode == CORRUPT

    def place_square(mode, choice, severity, current, event: gr.SelectData):
        """A click on the picture puts the occlusion's square there (severity at least 1;
        in Corruptions mode only: `when=corrupting` below)."""
        center = views.clicked_pixel(*event.index)
        level = max(1, int(severity))
        return (center, "occlusion", level, *corruption_views(choice, "occlusion", level, current, center))

    def session_curves(model, request: gr.Request, progress=PROGRESS):
        """The session's model's accuracy under corruption on a fixed subset of the test set,
        beside the shipped model's on the same images; one computation at a time."""
        if model is None:
            return NO_MODEL, gr.skip()
        if data.needs_download():
            return ("*The test images are not on this server, so the curves cannot be computed: set CIFAR10_PATH "
                    "to CIFAR-10 (a .npz or the cifar-10-batches-py folder).*"), gr.skip()
        try:
            running.start(request.session_hash)
        except views.Busy as busy:
            return f"*{busy}*", gr.skip()
        try:
            try:
                dataset = data.load_cifar10_cached()
            except ValueError as error:
                return f"*The test images are not available: {error}*", gr.skip()
            progress(0, desc="corrupting the test images")
            yours, theirs = views.subset_curves(model.predictor, predictor, dataset, shipped_subset,
                                                progress=lambda fraction, text: progress(fraction, desc=text))
        finally:
            running.finish(request.session_hash)
        figure = corruption_curves([(f"Your model ({model.summary})", yours), ("Shipped model", theirs)],
                                   title=f"Accuracy under corruption on the first {yours['images']:,} test images")
        return views.subset_summary(yours, theirs), figure

    def new_model(model):
        """Another model in use: the old one's curves go."""
        return NO_MODEL if model is None else f"Ready to measure your model ({model.summary}).", None

    def shipped_curves():
        report, problem = views.read_report(corruptions_path_for(SHIPPED_WEIGHTS))
        if report is None:
            return problem, None
        return views.report_summary(report), corruption_curves([("Shipped model", report)])

    gr.Markdown(
        "How sure is the model when the photo is noisy, blurred, dark, rotated or partly hidden, or when someone "
        "changes its pixels on purpose? Change the input and watch the answer, the Grad-CAM map and the "
        "“probably none of these” check follow."
    )
    with gr.Row(equal_height=False):
        choice = gr.Dropdown([views.CURRENT, *examples], value=views.CURRENT, label="Input", elem_id="robust-input",
                             min_width=260)
        mode = gr.Radio([CORRUPT, ATTACK], value=CORRUPT, label="Mode", elem_id="robust-mode", min_width=260)
    shown_line = gr.Markdown(views.NO_INPUT, elem_id="robust-shown")
    # Controls, then what they change: side by side on a laptop, the pictures right under the slider on a phone.
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            with gr.Group(visible=True) as corruption_controls:
                corruption = gr.Radio([(DISPLAY_NAMES[name], name) for name in CORRUPTIONS], value="gaussian_noise",
                                      label="Corruption", elem_id="robust-corruption")
                severity = gr.Slider(0, MAX_SEVERITY, value=FIRST_SEVERITY, step=1, elem_id="robust-severity",
                                     label="Severity (0 = unchanged; the view updates when you let go)")
            with gr.Group(visible=False) as attack_controls:
                method = gr.Radio([(title, name) for name, title in views.METHOD_NAMES.items()], value="pgd",
                                  label="Attack (pushes away from the model's answer on the original)",
                                  elem_id="robust-method")
                epsilon = gr.Slider(1, MAX_EPSILON, value=1, step=1, elem_id="robust-epsilon",
                                    label="ε: the most any pixel may change, in levels of 255")
        with gr.Column(scale=3, min_width=280, visible=False) as pictures:  # shown once there is an input
            with gr.Row(equal_height=False):
                seen = gr.Image(label=SEEN_LABEL, interactive=False, height=272, format="png", buttons=[],
                                elem_classes=["pixelated"], elem_id="robust-seen")
                heatmap = gr.Image(label=EXPLAIN_LABEL, interactive=False, height=272, format="png", buttons=[],
                                   elem_id="robust-heatmap")
                perturbation = ShownImage(label="The change, amplified", interactive=False, height=272,
                                        format="png", buttons=[], visible=False, elem_classes=["pixelated"],
                                        elem_id="robust-perturbation")
            ood_notice = gr.HTML("", elem_id="robust-ood")
            label = gr.Label(num_top_classes=5, label="The model's answer (top 5)", elem_id="robust-label")
    gr.Markdown("### Accuracy vs. severity")
    shipped_summary = gr.Markdown(elem_id="robust-summary")
    curves = ShownPlot(show_label=False, format="png", elem_id="robust-curves")
    with gr.Accordion("Your trained model's curves", open=False):
        gr.Markdown(f"Corrupts the first {views.SUBSET:,} official test images every way (60 versions of each) and "
                    "measures your model and the shipped one on them: a few minutes, one computation at a time on "
                    "this server.")
        compute = gr.Button("Compute my model's curves", elem_id="robust-compute")
        yours_summary = gr.Markdown(NO_MODEL, elem_id="robust-yours")
        yours_curves = ShownPlot(show_label=False, format="png", elem_id="robust-yours-curves")

    center = gr.State()       # where the occlusion's square goes: (row, column), the centre when None
    attack_state = gr.State()  # the last views.Attack, reused while only epsilon moves
    views_out = [shown_line, seen, label, heatmap, ood_notice]
    refresh_inputs = [mode, choice, shared_input, corruption, severity, center, method, epsilon, attack_state]
    refresh_outputs = [*views_out, perturbation, attack_state, pictures]
    # One queue group for every view of the tab (an attack takes about a second): no client
    # runs more than VIEW_CONCURRENCY at once through the queue. The group does not keep a
    # page's views in order, so a view that ends after a newer one started shows nothing
    # (newest); a mode switch still shows its mode's controls. /corrupt stays out of it: an API
    # caller always gets its answer, and it is a fast view (tens of milliseconds).
    group = {"concurrency_id": VIEW_GROUP, "concurrency_limit": VIEW_CONCURRENCY}
    quiet = {"api_visibility": "private", "show_progress": "hidden", **group}
    busy = {**quiet, "show_progress": "minimal"}  # an attack takes a second or more: show it is working

    gr.on([severity.release, corruption.input], corruption_views,
          inputs=[choice, corruption, severity, shared_input, center], outputs=views_out, api_name="corrupt",
          preprocess=False, show_progress="hidden", trigger_mode="always_last", **group)
    gr.on([epsilon.release, method.input], newest.only(attack_views),
          inputs=[choice, shared_input, method, epsilon, attack_state], outputs=refresh_outputs,
          trigger_mode="always_last", **busy)
    gr.on([choice.input, tab.select], newest.only(refresh), inputs=refresh_inputs,
          outputs=refresh_outputs, trigger_mode="always_last", **quiet)
    shared_input.change(newest.only(follow_input, when=showing),
                        inputs=[shown_tab, *refresh_inputs], outputs=refresh_outputs, trigger_mode="always_last",
                        **quiet)
    mode.input(newest.only(switch_mode, keep=2), inputs=refresh_inputs,
               outputs=[corruption_controls, attack_controls, *refresh_outputs],
               trigger_mode="always_last", **busy)
    seen.select(newest.only(place_square, when=corrupting), inputs=[mode, choice, severity, shared_input],
                outputs=[center, corruption, severity, *views_out], **quiet)
    compute.click(session_curves, inputs=trained_model, outputs=[yours_summary, yours_curves],
                  api_visibility="private", concurrency_limit=None)
    trained_model.change(new_model, inputs=trained_model, outputs=[yours_summary, yours_curves], **quiet)
    return FirstView(tab, [shipped_summary, curves], shipped_curves)
