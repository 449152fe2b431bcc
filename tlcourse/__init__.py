"""tlcourse: the companion package of the transfer-learning course.

Use it as ``import tlcourse as tl``. Importing it does nothing but define names: no seeding,
no device probing, no file access. Read any helper with ``tl.helper??`` in a notebook.

One idea lives in one module: ``data``, ``transforms``, ``models``, ``freezing``, ``features``,
``train``, ``probes``, ``finetune``, ``curves``, ``shift``, ``evaluate``, ``plots``, ``widgets``,
and lesson 07's ``lr_finder``, ``decisions``, ``saliency`` and ``deploy``.
The grader (``grading``) and the course tooling (``tooling``) are not part of the lessons' API.
"""
from . import curves, probes, shift  # lesson 04's experiment and lesson 05's tools, reached as tl.curves.X, tl.shift.X
from . import decisions, deploy, lr_finder, saliency  # lesson 07's tools, reached as tl.deploy.X and so on
from .data import ImageList, cells_as_tensor, elpv_split, load_elpv, load_image_folder, per_class_subset, validation_split
from .evaluate import classification_metrics, format_metrics
from .features import cache_size, extract_features, extract_views, forward_stages, stack_layers
from .finetune import fine_tune_top, weight_change
from .freezing import freeze, freeze_until, set_batchnorm, unfreeze
from .grading.checks import check
from .models import (AssetError, SmallCNN, classify_imagenet, count_parameters, head, imagenet_classes, load_backbone,
                     parameters_per_stage, replace_head, split_at, stage_costs, stages)
from .plots import (plot_confusion_matrix, plot_data_efficiency, plot_embeddings, plot_history, plot_stage_parameters,
                    show_feature_maps, show_images, show_predictions)
from .probes import fit_probe, grouped_cv_accuracy, probe_accuracy, stage_probes
from .train import epochs_for, fit, param_groups, predict, tensor_loader
from .transforms import preprocess
from .utils import Timer, device, seed_everything, torch_threads
from .widgets import data_size_explorer, flashcards, freezing_explorer, quiz_bank

__version__ = "0.1.0"

# Only what the notebooks, the exercises or the benchmark call; tests/test_api.py checks each name is used.
__all__ = [
    # every lesson: devices, seeds, timing, the exercises' checks and the study aids
    "device", "seed_everything", "Timer", "torch_threads", "check", "quiz_bank", "flashcards",
    # 01 basics: the pretrained backbone, its anatomy, a new head, freezing and BatchNorm
    "load_backbone", "AssetError", "classify_imagenet", "imagenet_classes", "preprocess", "stages",
    "count_parameters", "parameters_per_stage", "replace_head", "head", "freeze", "unfreeze", "freeze_until",
    "set_batchnorm", "show_predictions", "show_feature_maps", "plot_stage_parameters",
    "freezing_explorer",
    # 02 feature extraction: the data, cached features, the training loop, metrics and plots
    "load_elpv", "elpv_split", "validation_split", "extract_features", "forward_stages", "cache_size",
    "fit_probe", "fit", "tensor_loader", "predict", "SmallCNN", "classification_metrics", "format_metrics",
    "plot_history", "plot_confusion_matrix", "plot_embeddings", "show_images",
    # 03 fine-tuning: cut, discriminative learning rates, the top trained on cached activations
    "split_at", "param_groups", "fine_tune_top", "weight_change", "stage_costs", "probe_accuracy",
    # 04 limited data: the three strategies over sizes and seeds, and the verdict
    # (the strategies, the curve, its summary and the verdict are the lesson's experiment: tl.curves.X)
    "per_class_subset", "cells_as_tensor", "epochs_for", "plot_data_efficiency", "data_size_explorer",
    # 05 different distributions: which layers transfer, images from elsewhere (distances: tl.shift.X)
    "ImageList", "stage_probes", "grouped_cv_accuracy",
    # 06 your own data
    "load_image_folder",
    # views under quarter turns, multi-stage features (the benchmark also uses tl.probes.choose_C)
    "extract_views", "stack_layers",
]
