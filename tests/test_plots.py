"""The plotting helpers draw what they promise and reject inputs they cannot draw."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import tlcourse as tl
from tlcourse.train import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_embeddings_draws_one_group_per_label():
    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.array([0] * 20 + [1] * 10)
    ax = tl.plot_embeddings(points, labels, class_names=["functional", "defective"], title="t")
    assert len(ax.collections) == 2
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["functional (20)", "defective (10)"]


def test_plot_embeddings_rejects_points_that_are_not_2d():
    with pytest.raises(ValueError, match="points must be"):
        tl.plot_embeddings(np.zeros((5, 3)), np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="points must be"):
        tl.plot_embeddings(np.zeros((5, 2)), np.zeros(4, dtype=int))


def test_plot_stage_parameters_stacks_trainable_under_frozen():
    rows = [
        {"stage": "stem", "parameters": 100, "trainable": 0},
        {"stage": "head", "parameters": 50, "trainable": 50},
    ]
    ax = tl.plot_stage_parameters(rows)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [0, 50, 100, 0]  # trainable bars first, then the frozen rest on top


def test_plot_stage_parameters_accepts_a_real_model(backbone):
    ax = tl.plot_stage_parameters(tl.parameters_per_stage(backbone))
    assert [tick.get_text() for tick in ax.get_xticklabels()] == list(tl.stages(backbone))


def test_show_feature_maps_has_one_row_per_layer_and_shows_the_most_structured_channels_first():
    maps = torch.full((1, 4, 5, 5), 7.0)  # large but flat: nothing to see
    maps[0, 2, 2, :] = 1.0  # a line: the channel with the most structure must come first
    fig = tl.show_feature_maps({"stem": maps, "stage1": torch.rand(8, 3, 3)}, channels=3)
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel().startswith("stem")
    assert np.allclose(axes[0, 0].images[0].get_array(), maps[0, 2].numpy())
    assert axes[1, 0].get_ylabel() == "stage1\n3x3"


def test_show_predictions_draws_an_image_and_a_bar_chart_per_image():
    images = [np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((8, 8), dtype=np.uint8)]
    predictions = [[("cat", 0.6), ("dog", 0.3)], [("cup", 0.9), ("mug", 0.05)]]
    fig = tl.show_predictions(images, predictions, titles=["a", "b"])
    axes = np.array(fig.axes).reshape(2, 2)
    assert [len(ax.images) for ax in axes[0]] == [1, 1]
    assert [round(p.get_width()) for p in axes[1, 0].patches] == [30, 60]  # best prediction on top


def test_show_images_titles_can_be_coloured():
    fig = tl.show_images([np.zeros((4, 4))] * 2, titles=["right", "wrong"], columns=2, colours=["green", "red"])
    assert fig.axes[1].title.get_color() == "red"


def test_plots_draw_history_confusion_matrix_and_images():
    history = History()
    for epoch in range(3):
        history.append(epoch=epoch + 1, train_loss=1.0 / (epoch + 1), train_accuracy=0.5 + 0.1 * epoch,
                       val_loss=1.2 / (epoch + 1), val_accuracy=0.5)
    assert len(tl.plot_history(history).axes) == 2
    ax = tl.plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["functional", "defective"])
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    fig = tl.show_images([np.zeros((8, 8)), torch.zeros(3, 8, 8)], titles=["a", "b"], columns=2)
    assert len(fig.axes) == 2


def test_plot_data_efficiency_draws_mean_over_seeds_per_strategy_against_training_size():
    rows = [{"strategy": name, "per_class": size, "n_train": 1000 if size is None else 2 * size, "seed": seed,
             "seconds": 1.0, "accuracy": base + (0.1 if size is None else 0.0) + 0.02 * seed}
            for name, base in (("probe", 0.8), ("from scratch", 0.6)) for size in (5, None) for seed in (0, 1)]
    ax = tl.plot_data_efficiency(rows, baseline=0.687)
    assert [bars.get_label() for bars in ax.containers] == ["probe", "from scratch"]
    lines = [bars.lines[0] for bars in ax.containers]
    assert lines[0].get_xdata().tolist() == [10, 1000]
    assert lines[0].get_ydata().tolist() == pytest.approx([81.0, 91.0])  # mean over the two seeds, in %
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["10\n(5/class)", "1000\n(full)"]
    assert any("68.7%" in text.get_text() for text in ax.get_legend().get_texts())
