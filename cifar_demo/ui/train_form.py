"""The Train tab's form: presets, the Custom settings and the limits they must keep, and
how the form becomes a TrainConfig."""

import dataclasses
import functools
import json
from dataclasses import dataclass

import gradio as gr

from cifar_demo import training
from cifar_demo.artifacts import SHIPPED_WEIGHTS, config_path_for

PRESET_CHOICES = ["Quick", "Standard", "Custom"]
FROM_SCRATCH = "From scratch"
FINE_TUNE = "Fine-tune the shipped weights"
FINE_TUNE_LR_FACTOR = 0.1   # fine-tuning starts from a good minimum: a tenth of the peak LR

# What the Custom form accepts: a subset of what TrainConfig.validate() accepts (the
# engine's ranges, e.g. epochs 1..500), wide enough to experiment; the training slot's
# work cap and time limit (training_runs.FairUse) bound what a run may ask for as a whole.
# tests/test_training_runs.py checks every limit lies inside the engine's.
# Checked by config_from_form, whose messages name the field, on the raw values (the
# /train event does not preprocess: a component's own checks would answer a raw API
# call's bad value before the validator, without a message the caller gets).
LIMITS = {
    "epochs": (1, 30),
    "train_size": (100, 49000),     # 50,000 less the 1,000 held out for validation
    "batch_size": (16, 512),
    "learning_rate": (0.001, 1.0),
    "width_mult": (0.125, 1.0),
    "label_smoothing": (0.0, 0.3),
    "seed": (0, 2**31 - 1),
}
WHOLE_NUMBERS = ("epochs", "train_size", "batch_size", "seed")
# The settings' TrainConfig fields, in the form's (and config_from_form's) order.
SETTING_NAMES = ("epochs", "train_size", "batch_size", "learning_rate", "width_mult", "augment", "label_smoothing",
                 "seed")
CUSTOM_VAL_SIZE = 1000          # images a Custom run holds out for validation


@dataclass
class Form:
    """The form's components; `settings` in config_from_form's order, after start_from."""

    preset_name: gr.Radio
    start_from: gr.Radio
    settings: list


def build_form():
    """Lays out the preset choice, the starting point and the settings (the Quick preset's
    values, editable only with Custom)."""
    quick = training.preset("Quick")
    preset_name = gr.Radio(PRESET_CHOICES, value="Quick", label="Preset", elem_id="train-preset")
    start_from = gr.Radio([FROM_SCRATCH, FINE_TUNE], value=FROM_SCRATCH, label="Start from")
    with gr.Accordion("Settings (editable with Custom)", open=False):
        settings = [
            gr.Number(quick.epochs, label="Epochs", precision=0, interactive=False),
            gr.Number(quick.train_size, label="Training images", precision=0, interactive=False),
            gr.Number(quick.batch_size, label="Batch size", precision=0, interactive=False),
            gr.Number(quick.learning_rate, label="Peak learning rate (SGD, one-cycle)", interactive=False),
            gr.Slider(*LIMITS["width_mult"], value=quick.width_mult, step=0.125,
                      label="Width multiplier (1.0 = the blog's 64/128/256 channels)", interactive=False),
            gr.Checkbox(quick.augment, label="Augmentation (random crop + flip)", interactive=False),
            gr.Slider(*LIMITS["label_smoothing"], value=quick.label_smoothing, step=0.05,
                      label="Label smoothing", interactive=False),
            gr.Number(quick.seed, label="Seed", precision=0, interactive=False),
        ]
    return Form(preset_name, start_from, settings)


def show_preset(name):
    """Updates for the settings: the preset's values, or editable ones for Custom."""
    if name == "Custom":
        return [gr.update(interactive=True) for _ in SETTING_NAMES]
    config = training.preset(name)
    return [gr.update(value=getattr(config, setting), interactive=False) for setting in SETTING_NAMES]


def config_from_form(preset_name, start_from, epochs, train_size, batch_size, learning_rate,
                     width_mult, augment, label_smoothing, seed):
    """The run's TrainConfig; ValueError with a message for any bad value."""
    if preset_name not in PRESET_CHOICES:
        raise ValueError(f"preset must be one of {', '.join(PRESET_CHOICES)}, got {preset_name!r}")
    if start_from not in (FROM_SCRATCH, FINE_TUNE):
        raise ValueError(f"start from must be {FROM_SCRATCH!r} or {FINE_TUNE!r}, got {start_from!r}")
    if preset_name == "Custom":
        values = {
            "epochs": epochs, "train_size": train_size, "batch_size": batch_size, "learning_rate": learning_rate,
            "width_mult": width_mult, "label_smoothing": label_smoothing, "seed": seed,
        }
        for name, value in values.items():
            low, high = LIMITS[name]
            label = name.replace("_", " ")
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{label} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{label} must be between {low:g} and {high:g}, got {value:g}")
            if name in WHOLE_NUMBERS:
                if float(value) != int(value):
                    raise ValueError(f"{label} must be a whole number, got {value:g}")
                values[name] = int(value)
        if not isinstance(augment, bool):
            raise ValueError(f"augmentation must be true or false, got {augment!r}")
        config = training.preset("Quick", augment=augment, val_size=CUSTOM_VAL_SIZE, **values)
    else:
        config = training.preset(preset_name)
    if start_from == FINE_TUNE:
        if preset_name == "Custom" and config.width_mult != 1.0:
            raise ValueError("fine-tuning the shipped weights needs width multiplier 1.0 (their architecture)")
        config = dataclasses.replace(
            config, width_mult=1.0, init_weights=str(SHIPPED_WEIGHTS),
            learning_rate=config.learning_rate * FINE_TUNE_LR_FACTOR,
        )
    config.validate()
    return config


@functools.cache
def shipped_config():
    """The shipped weights' TrainConfig (what a fine-tune's validation must have been held out
    of), or None when its file is missing or unreadable."""
    try:
        return training.TrainConfig.from_dict(json.loads(config_path_for(SHIPPED_WEIGHTS).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def describe_config(config):
    """The run's settings in one sentence, shown as it starts."""
    return (
        f"{config.epochs} epoch(s) over {config.train_size or 'all'} training images, width x{config.width_mult:g} "
        f"(blog widths 64/128/256), batch {config.batch_size}, peak LR {config.learning_rate:g}, "
        f"augmentation {'on' if config.augment else 'off'}, label smoothing {config.label_smoothing:g}, "
        f"seed {config.seed}, {config.precision}"
        + (", starting from the shipped weights" if config.init_weights else "")
    )
