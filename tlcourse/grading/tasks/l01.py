"""Lesson 01's exercise tasks: a prediction, a parameter count, a new head, the BatchNorm trap, top-k.

Every judge compares the learner's evidence with a reference computed here with the package's
own helpers on a fresh pretrained backbone, never with a stored number. The hidden tests of the
tasks whose answer is a model or a function run it on inputs drawn fresh for each grading run
(:func:`checks.challenge`: random images, crops, sizes, head widths, ``k``), and the judge, in the
grader's process, recomputes what the right answer gives on those very inputs.
"""
from __future__ import annotations

import copy
import itertools
import numbers
from functools import lru_cache

import torch
from torch import nn

from ... import freezing, models, transforms
from ..checks import (Task, Verdict, as_plain_tensor, call_answer, close, extra_for_kind, fresh_generator,
                      fresh_random, function_evidence, hint, judge_cases, not_attempted, passed, register)

PROB_TOL = 3e-3  # probabilities agree to this much on CPU and GPU


@lru_cache(maxsize=1)
def _reference_backbone() -> nn.Module:
    """The pretrained backbone, for references only: never handed to learner code."""
    return models.load_backbone().eval()


def _photo(name: str):
    from skimage import data

    return getattr(data, name)()


def _probe(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A fixed random input, the same on every machine."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _first_items(value, limit: int = 100) -> list | None:
    """Up to ``limit`` items of an iterable (None for strings and non-iterables)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return None
    return list(itertools.islice(iter(value), limit))


# ---------------------------------------------------------------- 01.predict

PREDICT_PHOTO, PREDICT_K = "brick", 3


@lru_cache(maxsize=1)
def _reference_prediction() -> tuple[str, ...]:
    top = models.classify_imagenet(_reference_backbone(), _photo(PREDICT_PHOTO), topk=PREDICT_K)
    return tuple(name for name, _ in top)


def predict_evidence(answer, strict: bool) -> dict:
    items = _first_items(answer)
    if items is None:
        return {"kind": type(answer).__name__}
    described = []
    for item in items:
        if isinstance(item, str):
            described.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            described.append(["pair", str(item[0])])
        else:
            described.append(None)
    return {"kind": "list", "items": described}


def predict_judge(evidence: dict, strict: bool) -> Verdict:
    expected = list(_reference_prediction())
    if evidence.get("kind") == "str":
        return hint(f"`brick_top3` should be a list of {PREDICT_K} class names, not a single string.")
    items = evidence.get("items")
    if items is None:
        return hint(f"`brick_top3` should be a list of {PREDICT_K} class names (strings), "
                    f"not a {evidence.get('kind')}.")
    if any(isinstance(item, list) for item in items):
        return hint("Each prediction of `tl.classify_imagenet` is a `(name, probability)` pair: "
                    "keep only the names.")
    if not all(isinstance(item, str) for item in items):
        return hint("Every item of `brick_top3` should be a class name (a string).")
    if len(items) != PREDICT_K:
        return hint(f"You gave {len(items)} names; the task asks for the {PREDICT_K} most likely classes.")
    if items != expected and sorted(items) == sorted(expected):
        return hint("The right classes in the wrong order: put the most likely class first.")
    if items != expected:
        return hint(f"These are not the backbone's top {PREDICT_K} classes for `data.{PREDICT_PHOTO}()`. "
                    "Classify that photo with the pretrained `backbone` at the default input size.")
    return passed(f"ImageNet has no class for a brick wall, so the model names the closest things it "
                  f"knows ({', '.join(expected)}), judging by texture. It will see solar cells the same way.")


register(Task("01.predict", "What the backbone sees in a photo", points=1, answer="brick_top3",
              evidence=predict_evidence, judge=predict_judge))


# ---------------------------------------------------------------- 01.count

COUNT_STAGE = "stage4"


@lru_cache(maxsize=1)
def _reference_counts() -> dict:
    """The reference count, plus the counts that typical mistakes give."""
    model = copy.deepcopy(_reference_backbone())
    freezing.freeze_until(model, COUNT_STAGE)
    per_stage = models.parameters_per_stage(_reference_backbone())
    names = [row["stage"] for row in per_stage]
    later = {name: sum(row["parameters"] for row in per_stage[names.index(name):]) for name in names}
    return {
        "trainable": models.count_parameters(model, trainable_only=True),
        "total": models.count_parameters(model),
        "head": per_stage[-1]["parameters"],
        "from_stage": later,
    }


def count_evidence(answer, strict: bool) -> dict:
    if isinstance(answer, bool):
        return {"kind": "bool"}
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, numbers.Real):
        return {"kind": type(answer).__name__}
    return {"kind": "number", "value": float(answer)}


def count_judge(evidence: dict, strict: bool) -> Verdict:
    ref = _reference_counts()
    if evidence.get("kind") != "number":
        return hint(f"`n_trainable` should be a whole number of parameters, not a {evidence.get('kind')}.")
    value = evidence["value"]
    if value == ref["trainable"]:
        share = ref["trainable"] / ref["total"]
        return passed(f"{ref['trainable']:,} of {ref['total']:,} parameters ({share:.0%}) still train: "
                      "the late stages and the head hold most of the weights.")
    if value == ref["total"]:
        return hint("That is every parameter of the model. Count only those that still train "
                    "(`requires_grad=True`), after freezing.")
    if value == ref["total"] - ref["trainable"]:
        return hint("That is the number of frozen parameters; the task asks how many still train.")
    if value == ref["trainable"] - ref["head"]:
        return hint("You left out the head: `tl.freeze_until` freezes only the stages before the "
                    "one you name, and the head keeps training.")
    for stage, count in ref["from_stage"].items():
        if value == count:
            return hint(f"That is the count when the freezing stops before `{stage}`. "
                        f"`tl.freeze_until(model, \"{COUNT_STAGE}\")` freezes every stage before "
                        f"`{COUNT_STAGE}`; `{COUNT_STAGE}` and everything after it still train.")
    return hint(f"Not the expected count. Freeze a fresh `tl.load_backbone()` with "
                f"`tl.freeze_until(model, \"{COUNT_STAGE}\")`, then count the parameters that "
                "still have `requires_grad=True`.")


register(Task("01.count", "Count what still trains", points=1, answer="n_trainable",
              evidence=count_evidence, judge=count_judge))


# ---------------------------------------------------------------- 01.head

HEAD_CLASSES = 2


def _head_probe(strict: bool) -> torch.Tensor:
    """Images for the head: in the hidden test, a fresh batch size, image size and content."""
    if not strict:
        return _probe((1, 3, 96, 96), seed=0)
    rng = fresh_random(1)
    shape = (rng.randint(2, 3), 3, rng.choice([96, 112, 128, 160]), rng.choice([96, 128, 144]))
    return torch.randn(shape, generator=fresh_generator(1))


def head_evidence(answer, strict: bool) -> dict:
    if not isinstance(answer, nn.Module):
        return {"kind": type(answer).__name__}
    evidence = {
        "kind": "module",
        "state": {str(k): as_plain_tensor(v) for k, v in answer.state_dict().items()},
        "trainable": [str(name) for name, p in answer.named_parameters() if p.requires_grad],
    }
    x = _head_probe(strict)
    param = next(answer.parameters(), None)
    was_training = answer.training
    head = getattr(answer, "classifier", None)
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach())) \
        if isinstance(head, nn.Module) else None
    answer.eval()
    try:
        with torch.no_grad():
            evidence["output"] = as_plain_tensor(answer(x.to(param.device) if param is not None else x))
        if seen:  # what the head reads: the body's features on this run's images
            evidence["features"] = as_plain_tensor(seen[-1])
    except Exception as err:
        evidence["forward_error"] = f"{type(err).__name__}: {err}"[:300]
    finally:
        answer.train(was_training)
        if hook is not None:
            hook.remove()
    return evidence


def head_judge(evidence: dict, strict: bool) -> Verdict:
    if evidence.get("kind") != "module":
        return hint(f"`elpv_model` should be a model (an `nn.Module`), not a {evidence.get('kind')}.")
    reference = _reference_backbone()
    ref_state = reference.state_dict()
    state, output = evidence["state"], evidence.get("output")
    x = _head_probe(strict)
    imagenet_head = ref_state["classifier.weight"].shape
    if any(k != "classifier.weight" and k.endswith("classifier.weight") and v.shape == imagenet_head
           for k, v in state.items()) and (output is None or output.shape[-1] != 1000):
        return hint("Your model keeps the 1000-way ImageNet head and stacks a new layer on top of it. "
                    "Replace the head instead: the new layer should read the 1280 pooled features.")
    body = [k for k in ref_state if not k.startswith("classifier.")]
    wrong_place = [k for k in body if k not in state or state[k].shape != ref_state[k].shape]
    if wrong_place:
        return hint(f"The new layer is in the wrong place: `{wrong_place[0]}` is gone or changed shape. "
                    "Only the final classifier (`model.classifier`) should be new.")
    if "classifier.weight" in state and state["classifier.weight"].shape == imagenet_head:
        return hint("The model still ends in the 1000-way ImageNet classifier. Replace "
                    f"`model.classifier` with a new linear layer with {HEAD_CLASSES} outputs.")
    if output is None:
        return hint(f"The model fails on a batch of images (`{evidence.get('forward_error')}`). "
                    "Only the final classifier (`model.classifier`) should change.")
    if tuple(output.shape) != (x.shape[0], HEAD_CLASSES):
        return hint(f"For {x.shape[0]} image(s) the model gives outputs of shape {tuple(output.shape)}; "
                    f"ELPV has {HEAD_CLASSES} classes, so expect ({x.shape[0]}, {HEAD_CLASSES}).")
    changed = [k for k in body if not close(state[k], ref_state[k], atol=1e-6, rtol=1e-5)]
    if changed:
        return hint(f"The body's weights are not the pretrained ones (`{changed[0]}` differs). Start "
                    "from `tl.load_backbone()` with its ImageNet weights and change only the head.")
    weight, bias = state.get("classifier.weight"), state.get("classifier.bias")
    if weight is None or bias is None or tuple(weight.shape) != (HEAD_CLASSES, reference.num_features):
        return hint(f"`model.classifier` should be a linear layer from {reference.num_features} "
                    f"features to {HEAD_CLASSES} classes.")
    if "classifier.weight" not in evidence["trainable"]:
        return hint("The new head is frozen (`requires_grad=False`): it starts from random weights, "
                    "so it is the one part that must learn.")
    with torch.no_grad():
        features = reference.forward_head(reference.forward_features(x), pre_logits=True)
        expected = torch.nn.functional.linear(features, weight.float(), bias.float())
    if "features" not in evidence or not close(evidence["features"], features, atol=1e-3, rtol=1e-3):
        return hint("The new head does not read the backbone's pooled features: on the hidden test's "
                    "images, what reaches `model.classifier` differs from what the pretrained body "
                    "computes. Replace `model.classifier`; do not change `forward` or the body.")
    if not close(output, expected, atol=1e-3, rtol=1e-3):
        return hint("The model's output does not come from the new head applied to the backbone's "
                    "pooled features. Replace `model.classifier`; do not change `forward`.")
    n_head = weight.numel() + bias.numel()
    return passed(f"The body keeps its ImageNet features; only the new head ({n_head:,} parameters) "
                  "starts from scratch.")


register(Task("01.head", "A new head for two classes", points=2, answer="elpv_model",
              evidence=head_evidence, judge=head_judge))


# ---------------------------------------------------------------- 01.batchnorm

def _bn_cases(strict: bool) -> list[tuple[str, str, bool]]:
    """(case name, model kind, call model.train() before freeze_body)."""
    cases = [("a backbone with a new head, in train mode", "backbone", True)]
    if strict:
        cases += [("a backbone with a new head, in eval mode", "backbone", False),
                  ("a ResNet-18 from torchvision (head: `model.fc`)", "resnet", True)]
    return cases


def _bn_variant(index: int) -> dict:
    """The case's model and input: a head width, a weight seed and a probe batch, fresh per run."""
    rng = fresh_random(20 + index)
    return {"classes": rng.randint(2, 6), "seed": rng.randrange(2**31), "batch": rng.randint(3, 5),
            "size": rng.choice([48, 64, 80]), "probe": 30 + index}


def _bn_model(kind: str, variant: dict) -> nn.Module:
    if kind == "resnet":  # random weights, so nothing is downloaded
        import torchvision

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(variant["seed"])
            return torchvision.models.resnet18(weights=None, num_classes=variant["classes"])
    return models.replace_head(models.load_backbone(), variant["classes"])


def _bn_input(variant: dict) -> torch.Tensor:
    shape = (variant["batch"], 3, variant["size"], variant["size"])
    return torch.randn(shape, generator=fresh_generator(variant["probe"]))


def _bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The running statistics of every BatchNorm layer (what the trap is about)."""
    return {f"{i}.{name}": as_plain_tensor(getattr(layer, name))
            for i, layer in enumerate(freezing.iter_batchnorm(model))
            for name in ("running_mean", "running_var") if getattr(layer, name, None) is not None}


def _head_input(model: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = head.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return as_plain_tensor(seen[-1]) if seen else torch.empty(0)


def _batchnorm_case(answer, name: str, kind: str, pre_train: bool) -> dict:
    variant = _bn_variant([case[0] for case in _bn_cases(True)].index(name))
    model = _bn_model(kind, variant)
    if pre_train:
        model.train()
    bn_train_before = any(layer.training for layer in freezing.iter_batchnorm(model))
    result, problem = call_answer(answer, model, none_ok=True)
    if problem:
        return {"case": name, "kind": kind, **problem}
    head = models.head(model)
    head_ids = {id(p) for p in head.parameters()}
    params = list(model.named_parameters())
    switched_to_eval = bn_train_before and all(not layer.training for layer in freezing.iter_batchnorm(model))
    before = _bn_buffers(model)
    x = _bn_input(variant)
    model.train()
    train_features = _head_input(model, head, x)
    after = _bn_buffers(model)
    model.eval()
    eval_features = _head_input(model, head, x)
    return {
        "case": name, "kind": kind,
        "returned_model": result is model,
        "head_trainable": [n for n, p in params if id(p) in head_ids and p.requires_grad],
        "head_params": [n for n, p in params if id(p) in head_ids],
        "body_trainable": [n for n, p in params if id(p) not in head_ids and p.requires_grad],
        "body_params": sum(1 for _, p in params if id(p) not in head_ids),
        "switched_to_eval": switched_to_eval,
        "before": before, "after": after,
        "train_features": train_features, "eval_features": eval_features,
    }


def batchnorm_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _bn_cases(strict), _batchnorm_case)


def _batchnorm_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    moved = [k for k in case["before"] if not torch.equal(case["before"][k], case["after"][k])]
    nothing_frozen = case["body_params"] == len(case["body_trainable"])
    head_trains = len(case["head_trainable"]) == len(case["head_params"])
    if nothing_frozen and head_trains and moved and case["returned_model"]:
        return not_attempted("`freeze_body` leaves the model unchanged so far.")
    if not case["returned_model"]:
        return hint("`freeze_body` must return the model it froze (end it with `return model`).")
    if not head_trains:
        return hint(f"The head is frozen too ({where}). The new head starts from random weights, "
                    "so it must stay trainable: freeze everything except `tl.head(model)`.")
    if case["body_trainable"]:
        return hint(f"{len(case['body_trainable'])} parameter tensors of the body still train "
                    f"({where}), e.g. `{case['body_trainable'][0]}`: freeze every parameter "
                    "outside the head.")
    if moved:
        if case["switched_to_eval"]:
            return hint("BatchNorm statistics moved after `model.train()`. Calling `.eval()` inside "
                        "`freeze_body` does not last: the next `model.train()` switches the layers "
                        "back. Keep them in eval mode for good, for example with `tl.freeze(module)`.")
        return hint("The BatchNorm trap: the parameters are frozen, but one forward pass in train mode "
                    "still moved BatchNorm's running mean and variance. They are buffers, updated by "
                    "the forward pass, not by the optimiser, so `requires_grad=False` cannot stop "
                    "them. Keep the body's BatchNorm layers in eval mode, e.g. with `tl.freeze(module)`.")
    if not close(case["train_features"], case["eval_features"], atol=1e-4, rtol=1e-3):
        return hint("The running statistics stay put, but in train mode BatchNorm still normalises "
                    "each batch with that batch's own mean and variance, so the body's features "
                    "change from batch to batch. Keep the BatchNorm layers in eval mode instead.")
    expected_buffers, expected_features = _bn_reference(expected[1], expected[0])
    if (set(case["after"]) != set(expected_buffers)
            or any(not torch.equal(case["after"][k], v) for k, v in expected_buffers.items())
            or not close(case["eval_features"], expected_features, atol=1e-4, rtol=1e-3)):
        return hint(f"The frozen model's BatchNorm statistics or features {where} are not those of the "
                    "model it was given: `freeze_body` should change how the model trains, not its weights, "
                    "its statistics or its layers.")
    return None


def _bn_reference(kind: str, name: str) -> tuple[dict, torch.Tensor]:
    """What the hidden test's fresh model holds and computes in eval mode (the grader's side)."""
    variant = _bn_variant([case[0] for case in _bn_cases(True)].index(name))
    model = _bn_model(kind, variant).eval()
    return _bn_buffers(model), _head_input(model, models.head(model), _bn_input(variant))


def batchnorm_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _bn_cases(strict), _batchnorm_verdict, answer="freeze_body",
        should_be="a function that takes a model", where="on {0}", unattempted=None,
        error_extra=extra_for_kind("resnet", " It must work for any model that `tl.head` understands: find the "
                                             "head with `tl.head(model)`."),
    ) or passed("The body is now a fixed feature extractor: no gradients, and BatchNorm normalises "
                "with its stored ImageNet statistics even in train mode. Only the head will learn.")


register(Task("01.batchnorm", "Freeze the body, BatchNorm included", points=2, answer="freeze_body",
              evidence=batchnorm_evidence, judge=batchnorm_judge))


# ---------------------------------------------------------------- 01.topk

TOPK_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "hubble_deep_field",
               "immunohistochemistry", "page", "grass", "gravel", "colorwheel", "clock", "cell")


def _topk_cases(strict: bool) -> list[tuple]:
    """(scikit-image photo, k, hand the model over in train mode, crop): the hidden test draws
    three other photos, each cropped and maybe mirrored, and a k for each, fresh for every run."""
    cases = [("chelsea", 3, True, None)]
    if strict:
        rng = fresh_random(40)
        for i, photo in enumerate(rng.sample([p for p in TOPK_PHOTOS if p != "chelsea"], 3)):
            crop = (round(rng.uniform(0.6, 1.0), 3), round(rng.uniform(0.6, 1.0), 3),
                    round(rng.random(), 3), round(rng.random(), 3), rng.random() < 0.5)
            cases.append((photo, rng.randint(1, 6), i != 1, crop))
    return cases


def _case_image(photo: str, crop: tuple | None):
    """The photo, cut to ``crop`` = (height share, width share, top, left, mirror) when given."""
    image = _photo(photo)
    if crop is None:
        return image
    h_share, w_share, top, left, mirror = crop
    h, w = image.shape[:2]
    ch, cw = max(32, int(h * h_share)), max(32, int(w * w_share))
    y, x = int((h - ch) * top), int((w - cw) * left)
    image = image[y:y + ch, x:x + cw]
    return image[:, ::-1].copy() if mirror else image.copy()


def _topk_case(answer, photo: str, k: int, train_mode: bool, crop: tuple | None = None) -> dict:
    model = models.load_backbone()
    if train_mode:
        model.train()
    result, problem = call_answer(answer, model, _case_image(photo, crop), k)
    if problem:
        return {"photo": photo, "k": k, **problem}
    items = _first_items(result)
    described = None
    if items is not None:
        described = []
        for item in items:
            pair = _first_items(item, 3)
            if pair is None or len(pair) != 2:
                described.append({"shape": "not a pair"})
                continue
            name, prob = pair
            try:
                prob = float(prob)
            except Exception:
                prob = None
            described.append({"name": name if isinstance(name, str) else None,
                              "name_type": type(name).__name__, "prob": prob})
    return {"photo": photo, "k": k, "items": described}


def topk_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _topk_cases(strict), _topk_case)


@lru_cache(maxsize=32)
def _reference_probabilities(photo: str, variant: str = "right", crop: tuple | None = None) -> dict[str, float]:
    """Every class's probability: ``right`` as the lesson does it, or a typical mistake."""
    model = copy.deepcopy(_reference_backbone())
    image = _case_image(photo, crop)
    if variant == "right":
        return dict(models.classify_imagenet(model, image, topk=1000))
    x = transforms.preprocess(224)(image).unsqueeze(0)
    if variant == "train_mode":
        model.train()
    elif variant == "no_normalisation":
        x = x * 0.5 + 0.5  # back to [0, 1]
    with torch.no_grad():
        probs = model(x).softmax(dim=1)[0]
    names = models.imagenet_classes()
    return {names[i]: float(p) for i, p in enumerate(probs)}


def _matches(items: list[dict], probs: dict[str, float], k: int) -> bool:
    top = sorted(probs.values(), reverse=True)[:k]
    return len(items) == k and all(
        item["name"] in probs and abs(probs[item["name"]] - item["prob"]) <= PROB_TOL
        and abs(item["prob"] - expected) <= PROB_TOL for item, expected in zip(items, top))


def _topk_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    photo, k, _, crop = expected
    items = case.get("items")
    if items is None or any("shape" in item for item in items):
        return hint(f"`top_k` should return a list of `(name, probability)` pairs ({where}).")
    if any(item["name"] is None for item in items):
        kind = items[0]["name_type"]
        return hint(f"Return class names, not {kind}s: look the indices up in `tl.imagenet_classes()`.")
    if any(item["prob"] is None for item in items):
        return hint("Each probability should be a number (use `float(p)`).")
    if len(items) != k:
        return hint(f"Asked for the top {k}, `top_k` gave {len(items)} ({where}).")
    probabilities = [item["prob"] for item in items]
    if any(p > 1 + 1e-4 or p < 0 for p in probabilities):
        return hint("These look like logits, not probabilities: apply `softmax` over the 1000 classes.")
    right = _reference_probabilities(photo, "right", crop)
    if all(p > 1 - 1e-4 for p in probabilities) and right.get(items[0]["name"], 0) < 0.999:
        return hint("Every probability is 1: the softmax ran over the batch dimension (dim 0, a single "
                    "image). Take it over the classes (`dim=1`).")
    if probabilities != sorted(probabilities, reverse=True):
        return hint("Order the predictions from the most likely to the least likely.")
    if _matches(items, _reference_probabilities(photo, "right", crop), k):
        return None
    if _matches(items, _reference_probabilities(photo, "train_mode", crop), k):
        return hint(f"Wrong predictions {where}: the model was in train mode, so BatchNorm "
                    "normalised with the statistics of this one image. Call `model.eval()` first.")
    if _matches(items, _reference_probabilities(photo, "no_normalisation", crop), k):
        return hint(f"Wrong predictions {where}: the input is in [0, 1], but the backbone was "
                    "trained on inputs scaled to [-1, 1]. Use `tl.preprocess(224)`.")
    return hint(f"The predictions differ from the reference {where}. Preprocess with "
                "`tl.preprocess(224)`, add a batch dimension, use the model in eval mode, and take "
                "the softmax over the classes.")


def topk_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _topk_cases(strict), _topk_verdict, answer="top_k",
        should_be="a function `top_k(model, image, k)`",
        where=lambda e: f"for `data.{e[0]}()`{' (cropped)' if e[3] else ''} with k={e[1]}",
        label=lambda case: (case.get("photo"), case.get("k")), expected_label=lambda expected: expected[:2],
    ) or passed("That is exactly what `tl.classify_imagenet` does: now you know it from the inside.")


register(Task("01.topk", "Top-k predictions by hand", points=2, answer="top_k",
              evidence=topk_evidence, judge=topk_judge))
