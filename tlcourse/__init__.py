"""tlcourse: the companion package of the transfer-learning course.

Use it as ``import tlcourse as tl``. Importing it does nothing but define names: no seeding,
no device probing, no file access. Read any helper with ``tl.helper??`` in a notebook.
"""
from .checks import check
from .data import (
    ELPV,
    dataset_fingerprint,
    elpv_split,
    load_elpv,
    load_image_folder,
    per_class_subset,
    validation_split,
)
from .evaluate import classification_metrics, format_metrics
from .experiments import (
    DihedralLoader,
    RecordingLoss,
    cells_as_tensor,
    data_efficiency_curve,
    data_efficiency_verdict,
    distance_matrix,
    embed_images,
    epochs_for,
    fine_tune_top,
    fine_tuning_strategy,
    frechet_distance,
    fit_linear_probe,
    format_summary,
    from_scratch_strategy,
    grouped_cv_accuracy,
    keep_batchnorm_statistics,
    linear_probe_strategy,
    mmd,
    plot_data_efficiency,
    preprocess_normalised,
    probe_accuracy,
    probe_probabilities,
    random_crops,
    random_dihedral,
    render_words,
    stage_costs,
    stage_probes,
    summarise,
    weight_change,
)
from .features import cache_size, clear_cache, extract_features, forward_stages
from .models import (
    AssetError,
    SmallCNN,
    StagedModel,
    classify_imagenet,
    count_parameters,
    fingerprint,
    freeze,
    freeze_until,
    head,
    imagenet_classes,
    iter_batchnorm,
    load_backbone,
    param_groups,
    parameters_per_stage,
    preprocess,
    replace_head,
    split_at,
    stage_names,
    stages,
    unfreeze,
)
from .recipes import (
    PROBE_LAYERS,
    ROTATIONS,
    Rotate90,
    choose_C,
    extract_rotated_features,
    extract_rotated_maps,
    fine_tune_top_on_views,
    fit_probe,
    fit_probe_on_views,
    predict_top_on_views,
    predict_views,
    rotated_preprocess,
    stack_layers,
)
from .plots import (
    plot_confusion_matrix,
    plot_embeddings,
    plot_history,
    plot_stage_parameters,
    show_feature_maps,
    show_images,
    show_predictions,
)
from .train import History, fit, predict, tensor_loader
from .utils import Timer, cache_dir, device, seed_everything, torch_threads
from .widgets import data_size_explorer, flashcards, freezing_explorer, quiz, quiz_bank

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
