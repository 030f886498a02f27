"""What one browser session owns: the model it trained, shared by the Train, Classify,
Mistakes, Inside the network and Robustness tabs through a gr.State and freed with the session."""

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from cifar_demo.inside import TrainedTopActivations
from cifar_demo.predictor import Predictor

LOG = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """A model trained in one browser session; kept in that session's state only."""

    predictor: Predictor
    summary: str              # e.g. "3-epoch run, 64.4% test accuracy"
    test_probabilities: np.ndarray  # (N, 10) on the official test set, for the Mistakes tab
    top_activations: TrainedTopActivations | None = None  # for the Inside the network tab
    # Tells this model from any other the process made: id() is reused once a model is freed.
    serial: int = field(default_factory=itertools.count(1).__next__)


def free_trained_model(model):
    """Called by Gradio when a session's state is deleted (its page closed): the model goes
    with it, and the server log says so."""
    if model is not None:
        LOG.info("freed the trained model of a closed session (%s)", model.summary)
