"""From notebook to tool (lesson 07): a saved model reloads in a fresh process, predicts image files
with the course's preprocessing, refuses files that are not tlcourse models, and exports to ONNX."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tlcourse as tl
from tlcourse import cli, deploy

SIZE = 64
CLASSES = ["functional", "defective"]
TEMPERATURE = 1.3


@pytest.fixture(scope="module")
def net(backbone):
    torch.manual_seed(0)
    return tl.replace_head(copy.deepcopy(backbone), 2).eval()  # the real Lite0 weights, a fresh head


@pytest.fixture(scope="module")
def files(tmp_path_factory, net, elpv):
    """A saved model, two ELPV cells and a colour photo as image files, and two broken image files."""
    folder = tmp_path_factory.mktemp("deploy")
    model = deploy.save_model(folder / "cell_classifier.pt", net, backbone="efficientnet_lite0", size=SIZE,
                              class_names=CLASSES, threshold=0.3, temperature=TEMPERATURE, extra={"val_accuracy": 0.5})
    paths = {"model": model, "cells": []}
    for i in (0, 1):
        paths["cells"].append(folder / f"cell{i}.png")
        elpv[i][0].save(paths["cells"][-1])
    from skimage import data

    paths["photo"] = folder / "coffee.jpg"
    Image.fromarray(data.coffee()).save(paths["photo"])
    paths["corrupt"] = folder / "corrupt.png"
    paths["corrupt"].write_bytes(b"this is not an image")
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(paths["cells"][0].read_bytes()[:300])
    return paths


def _reference_probabilities(net, image) -> np.ndarray:
    """What the course computes for an image: tl.preprocess, the network, softmax at the temperature."""
    x = tl.preprocess(SIZE)(np.asarray(image).copy()).unsqueeze(0)
    with torch.no_grad():
        return (net(x) / TEMPERATURE).softmax(dim=1)[0].numpy()


def test_predict_image_uses_the_preprocessing_the_model_was_trained_with(net, files):
    model = deploy.load_model(files["model"])
    for path in [*files["cells"], files["photo"]]:
        prediction = deploy.predict_image(model, path)
        expected = _reference_probabilities(net, Image.open(path))
        np.testing.assert_allclose(list(prediction.probabilities.values()), expected, atol=1e-5)
        assert prediction.probability == pytest.approx(prediction.probabilities[prediction.label])


def test_a_saved_model_keeps_what_is_needed_to_use_it(files):
    meta, _ = deploy.read_model_file(files["model"])
    assert meta["backbone"] == "efficientnet_lite0" and meta["class_names"] == CLASSES and meta["size"] == SIZE
    assert meta["threshold"] == 0.3 and meta["temperature"] == TEMPERATURE and meta["extra"] == {"val_accuracy": 0.5}
    assert meta["mean"] == list(tl.transforms.MEAN) and meta["std"] == list(tl.transforms.STD)
    assert meta["tlcourse_version"] == tl.__version__ and meta["torch_version"] == torch.__version__


def test_the_threshold_decides_between_the_two_classes():
    model = deploy.DeployedModel(nn.Identity(), size=8, class_names=CLASSES, threshold=0.3)
    assert model.decide([[0.75, 0.25], [0.6, 0.4], [0.1, 0.9]]).tolist() == [0, 1, 1]
    model.threshold = None  # without a threshold the most probable class wins
    assert model.decide([[0.75, 0.25], [0.6, 0.4]]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="two classes"):
        deploy.DeployedModel(nn.Identity(), size=8, class_names=["a", "b", "c"], threshold=0.5)


@pytest.mark.slow
def test_a_saved_model_predicts_the_same_in_a_fresh_process_and_the_command_names_a_corrupt_image(files):
    good = [*files["cells"], files["photo"]]
    run = subprocess.run([sys.executable, "-m", "tlcourse.cli", "predict", str(files["model"]), *map(str, good),
                          str(files["corrupt"]), "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr  # one image could not be read; the others were classified
    fresh = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["file"] for r in fresh] == [str(p) for p in good]
    for result, path in zip(fresh, good):
        here = deploy.predict_image(files["model"], path)  # loaded in this process
        assert result["label"] == here.label and result["threshold"] == here.threshold
        np.testing.assert_allclose(list(result["probabilities"].values()), list(here.probabilities.values()), atol=1e-6)
    assert str(files["corrupt"]) in run.stderr and "corrupt or not an image" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_predict_command_prints_one_sentence_per_image(files, capsys):
    assert cli.main(["predict", str(files["model"]), *map(str, files["cells"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, files["cells"]):
        assert line.startswith(f"{path}: ") and "threshold 0.300" in line
        assert line.split(": ")[1].split(" (")[0] in CLASSES


@pytest.mark.parametrize("broken", ["corrupt", "truncated"])
def test_a_broken_image_gets_an_error_that_names_it(files, broken):
    with pytest.raises(ValueError, match=f"Cannot read image .*{files[broken].name}"):
        deploy.predict_image(deploy.load_model(files["model"]), files[broken])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        deploy.predict_image(deploy.load_model(files["model"]), files[broken].with_name("missing.png"))


def _wrong_files(folder: Path, good: Path, net) -> dict[str, Path]:
    """Files that a learner might pass instead of a saved model."""
    wrong = {name: folder / f"{name}.pt" for name in ("random_bytes", "text", "state_dict", "pickled_module",
                                                      "newer_format", "damaged_weights", "damaged_metadata")}
    wrong["random_bytes"].write_bytes(np.random.default_rng(0).bytes(1000))
    wrong["text"].write_text("epochs: 12\n")
    torch.save(net.state_dict(), wrong["state_dict"])  # weights without the metadata
    torch.save(nn.Linear(2, 2), wrong["pickled_module"])  # a pickled object: weights_only refuses to run it
    payload = torch.load(good, weights_only=True)
    meta = json.loads(payload["metadata"])
    torch.save({**payload, "metadata": json.dumps({**meta, "format_version": 99})}, wrong["newer_format"])
    torch.save({**payload, "state_dict": {k: v for k, v in list(payload["state_dict"].items())[:-1]}},
               wrong["damaged_weights"])
    torch.save({**payload, "metadata": json.dumps({"size": 64})}, wrong["damaged_metadata"])
    return wrong


def test_files_that_are_not_tlcourse_models_get_a_clear_error(tmp_path, files, net, capsys):
    for kind, path in _wrong_files(tmp_path, files["model"], net).items():
        with pytest.raises(deploy.ModelFileError) as err:
            deploy.load_model(path)
        assert str(path) in str(err.value), kind
        assert ("newer tlcourse" if kind == "newer_format" else "damaged" if kind.startswith("damaged")
                else "not a model saved by tlcourse") in str(err.value), kind
        assert cli.main(["predict", str(path), str(files["cells"][0])]) == 2
        assert str(path) in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="Model file not found"):
        deploy.load_model(tmp_path / "nowhere.pt")


def test_saving_leaves_every_module_in_the_mode_it_was_in(tmp_path, net):
    tl.set_batchnorm(net.train(), "eval")  # training, with frozen BatchNorm statistics (lesson 03's policy)
    modes = [m.training for m in net.modules()]
    try:
        deploy.save_model(tmp_path / "m.pt", net, backbone="efficientnet_lite0", size=SIZE, class_names=CLASSES)
        assert [m.training for m in net.modules()] == modes and net.training and not net.bn1.training
    finally:
        tl.set_batchnorm(net, "train").eval()  # PyTorch's default policy again, for the other tests


def test_save_model_refuses_a_network_that_it_could_not_rebuild(tmp_path, net):
    custom = copy.deepcopy(net)
    custom.classifier = nn.Sequential(nn.Linear(1280, 64), nn.ReLU(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match="do not fit"):
        deploy.save_model(tmp_path / "m.pt", custom, backbone="efficientnet_lite0", size=SIZE, class_names=CLASSES)
    with pytest.raises(ValueError, match="do not fit"):  # three names for a two-way head
        deploy.save_model(tmp_path / "m.pt", net, backbone="efficientnet_lite0", size=SIZE, class_names=["a", "b", "c"])
    assert not (tmp_path / "m.pt").exists()


def test_the_two_halves_of_a_split_save_and_reload_as_one_network(tmp_path, net):
    bottom, top = tl.split_at(net, "stage5")
    tuned_top = copy.deepcopy(top)  # what fine_tune_top returns
    with torch.no_grad():
        tl.head(tuned_top).bias.add_(1.0)
    path = deploy.save_model(tmp_path / "m.pt", deploy.assemble(bottom, tuned_top), backbone="efficientnet_lite0",
                             size=SIZE, class_names=CLASSES)
    x = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        expected = tuned_top.eval()(bottom.eval()((x.permute(0, 3, 1, 2) / 255.0 - 0.5) / 0.5)).softmax(dim=1)
        np.testing.assert_allclose(deploy.load_model(path)(x), expected, atol=1e-5)


# ---------------------------------------------------------------- ONNX

@pytest.fixture(scope="module")
def exported(files, tmp_path_factory):
    model = deploy.load_model(files["model"])
    return model, deploy.export_onnx(model, tmp_path_factory.mktemp("onnx") / "cell_classifier.onnx")


@pytest.mark.slow
def test_the_onnx_export_matches_pytorch_preprocessing_included(exported, files):
    import onnxruntime

    model, onnx_path = exported
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    assert image.type == "tensor(uint8)" and image.shape[1:] == [SIZE, SIZE, 3]
    assert deploy.onnx_parity(model, onnx_path, [*files["cells"], files["photo"]]) < 1e-4
    for batch in (1, 5):  # any batch size
        pixels = np.random.default_rng(batch).integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
        assert deploy.onnx_parity(model, onnx_path, pixels) < 1e-4


@pytest.mark.slow
def test_the_onnx_file_carries_the_class_names_and_the_threshold(exported):
    import onnx

    props = {p.key: json.loads(p.value) for p in onnx.load(str(exported[1])).metadata_props}
    assert props["class_names"] == CLASSES and props["threshold"] == 0.3 and props["size"] == SIZE


@pytest.mark.slow
def test_onnx_parity_sees_a_model_that_differs_from_the_export(exported, files):
    model, onnx_path = exported
    changed = copy.deepcopy(model)
    with torch.no_grad():
        tl.head(changed.net).weight.mul_(3.0)
    assert deploy.onnx_parity(changed, onnx_path, files["cells"]) > 1e-3
    with pytest.raises(ValueError, match="uint8 images of shape"):
        deploy.onnx_parity(model, onnx_path, np.zeros((1, SIZE, SIZE, 3), dtype=np.float32))


@pytest.mark.slow
def test_latency_is_measured_for_pytorch_and_onnx_runtime(exported):
    model, onnx_path = exported
    result = deploy.latency(model, onnx_path, repeats=2, warmup=1)
    assert result["pytorch_ms"] > 0 and result["onnxruntime_ms"] > 0 and result["threads"] == 1


def test_the_export_falls_back_to_the_dynamo_exporter_where_torch_lacks_the_torchscript_one(files, tmp_path,
                                                                                              monkeypatch):
    """A torch without the TorchScript exporter gets the dynamo one (faked here from a real export: the
    dynamo export itself takes 35-50 s on a CPU core), and the file still carries the metadata."""
    import onnx

    model, real_export, calls = deploy.load_model(files["model"]), torch.onnx.export, []

    def export(module, args, f=None, *, dynamo=True, dynamic_axes=None, dynamic_shapes=None, **names):
        calls.append(dynamo)
        if not dynamo:
            raise NotImplementedError("this torch has no TorchScript exporter")
        assert dynamic_shapes is not None  # the batch dimension stays free
        buffer = __import__("io").BytesIO()
        real_export(module, args, buffer, dynamo=False, dynamic_axes={"image": {0: "batch"}}, **names)
        return type("Program", (), {"model_proto": onnx.load_from_string(buffer.getvalue())})()

    monkeypatch.setattr(torch.onnx, "export", export)
    path = deploy.export_onnx(model, tmp_path / "fallback.onnx")
    assert calls == [False, True]
    assert deploy.onnx_parity(model, path, files["cells"]) < 1e-4
    assert json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["threshold"]) == 0.3
