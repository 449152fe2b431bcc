"""Lesson 03's exercise tasks: augmentation, discriminative parameter groups, weight movement, a training epoch.

Every judge compares the learner's evidence with a reference computed here with the package's
own helpers (``stages``, ``freeze_until``, ``weight_change``) or a reference loop run on the
same fixed inputs, never with a stored number.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import torch
from torch import nn

from ... import finetune, freezing, models, train
from ..checks import (Task, Verdict, as_plain_tensor, call_answer, close, describe_error, dict_of_numbers, fresh_random,
                      extra_for_kind, function_evidence, hint, judge_cases, passed, register)


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A fixed random input, the same on every machine."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- 03.augment

def _augment_cases(strict: bool) -> list[tuple[str, tuple[int, ...], int]]:
    """(case, image shape, draws)."""
    cases = [("a 3-channel 16 x 16 image", (3, 16, 16), 160)]
    if strict:
        cases += [("a 1-channel 24 x 24 image", (1, 24, 24), 200), ("a 3-channel 40 x 40 image", (3, 40, 40), 200)]
    return cases


def _poses(image: torch.Tensor) -> list[torch.Tensor]:
    """The 8 poses of a square image: 4 quarter turns of it and of its mirror image."""
    return [torch.rot90(base, k, dims=(-2, -1)) for base in (image, image.flip(-1)) for k in range(4)]


def _augment_case(answer, i: int, case: tuple[str, tuple[int, ...], int]) -> dict:
    name, shape, draws = case
    image = _random(shape, seed=20 + i)
    poses = _poses(image)
    torch.manual_seed(i)

    def draw_poses() -> list[int]:
        """The pose of each draw: -3 for None, -2 for another type or shape, -1 for no pose at all."""
        seen = []
        for _ in range(draws):
            out = answer(image.clone())
            if out is None:
                seen.append(-3)
            elif not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
                seen.append(-2)
            else:
                out = out.detach().cpu().float()
                seen.append(next((k for k, pose in enumerate(poses) if torch.allclose(out, pose)), -1))
        return seen

    seen, problem = call_answer(draw_poses)
    return {"case": name, **problem} if problem else {"case": name, "poses": seen}


def augment_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, enumerate(_augment_cases(strict)), _augment_case)


ROTATIONS_ONLY, FLIPS_ONLY = {0, 1, 2, 3}, {0, 2, 4, 6}  # pose k<4: turned k times; k>=4: mirrored, then turned


def _augment_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    draws = expected[2]
    poses = case.get("poses")
    if not isinstance(poses, list) or len(poses) != draws:
        return hint("The evidence for this task is incomplete.")
    seen = set(poses)
    if -3 in seen:
        return hint(f"`augment` returned `None` {where}: return the transformed image.")
    if -2 in seen:
        return hint(f"`augment` changed the image's shape {where}: flips and quarter turns of a square "
                    "cell keep its size (no crops, no resizing).")
    if -1 in seen:
        return hint(f"Some outputs are not a flip or a quarter turn of the input {where}. Rotations by "
                    "other angles, crops, blur or colour changes alter the cell (and can hide or invent "
                    "a crack); keep to flips and 90° rotations, which keep every pixel.")
    if seen == {0}:
        return hint("`augment` never changes the image: each call should pick a random pose.")
    if seen <= ROTATIONS_ONLY:
        return hint("Only rotations: add a random flip too, so mirror images appear (8 poses in all).")
    if seen <= FLIPS_ONLY or seen <= {0, 4} or seen <= {0, 6}:
        return hint("Only flips: add random quarter turns (`torch.rot90` with a random k) so that "
                    "every one of the 8 poses of a square can appear.")
    if len(seen) < 8:
        return hint(f"Only {len(seen)} of the 8 poses appeared in {draws} draws {where}: combine a random "
                    "flip with a random number of quarter turns (0 to 3).")
    return None


def augment_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _augment_cases(strict), _augment_verdict, answer="augment",
        should_be="a function (or a transform) of an image tensor", where="on {0}",
        unattempted=lambda cases: all(c.get("poses") and set(c["poses"]) == {-3} for c in cases),
    ) or passed("A solar cell flipped or turned by a quarter turn is still a valid cell with the same "
                "label: 8 views of every training image for free.")


register(Task("03.augment", "Augmentation that keeps the label", points=1, answer="augment",
              evidence=augment_evidence, judge=augment_judge))


# ---------------------------------------------------------------- 03.groups

def _groups_cases(strict: bool) -> list[tuple[str, str, str, float, float]]:
    """(case, model kind, first trainable stage, head lr, body lr)."""
    cases = [("the backbone with a 2-class head, trainable from stage6", "backbone", "stage6", 1e-3, 1e-4)]
    if strict:  # learning rates drawn for this run
        rng = fresh_random(60)
        rates = [(round(10 ** rng.uniform(-3, -1.5), 6), round(10 ** rng.uniform(-5.5, -3.5), 7)) for _ in range(2)]
        cases += [("a ResNet-18 with a 3-class head, trainable from stage3", "resnet", "stage3", *rates[0]),
                  ("the backbone, trainable from stage4", "backbone", "stage4", *rates[1])]
    return cases


def _groups_model(kind: str, stage: str) -> nn.Module:
    if kind == "resnet":  # random weights, so nothing is downloaded
        import torchvision

        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None, num_classes=3)
    else:
        model = models.replace_head(models.load_backbone(), 2)
    return freezing.freeze_until(model, stage)


def _groups_case(answer, name: str, kind: str, stage: str, head_lr: float, body_lr: float) -> dict:
    model = _groups_model(kind, stage)
    names = {id(p): n for n, p in model.named_parameters()}
    result, problem = call_answer(answer, model, head_lr, body_lr)
    if problem:
        return {"case": name, **problem}
    try:
        groups = list(result)
    except Exception:
        groups = None
    if groups is None or not all(isinstance(g, dict) and "params" in g for g in groups):
        return {"case": name, "type": type(result).__name__}
    described = []
    for group in groups:
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        lr = group.get("lr")
        described.append({"params": [names.get(id(p), "?") for p in params],
                          "lr": float(lr) if isinstance(lr, (int, float)) else None})
    optimizer_error = None
    try:
        torch.optim.AdamW(groups, lr=123.0)
    except Exception as err:
        optimizer_error = describe_error(err)
    return {"case": name, "groups": described, "optimizer_error": optimizer_error}


def groups_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _groups_cases(strict), _groups_case)


@lru_cache(maxsize=8)
def _groups_reference(kind: str, stage: str) -> dict:
    model = _groups_model(kind, stage)
    head = {id(p) for p in models.head(model).parameters()}
    params = list(model.named_parameters())
    return {"head": frozenset(n for n, p in params if id(p) in head),
            "body": frozenset(n for n, p in params if id(p) not in head and p.requires_grad),
            "frozen": frozenset(n for n, p in params if not p.requires_grad)}


def _groups_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, kind, stage, head_lr, body_lr = expected
    if "groups" not in case:
        return hint("Return a list of dicts, each with `'params'` (a list of parameters) and `'lr'`, "
                    "ready for `torch.optim.AdamW(groups)`.")
    ref = _groups_reference(kind, stage)
    lr_of: dict[str, list] = {}
    for group in case["groups"]:
        for param in group["params"]:
            lr_of.setdefault(param, []).append(group["lr"])
    if "?" in lr_of:
        return hint(f"Some parameters in your groups do not belong to the model {where}.")
    if any(len(lrs) > 1 for lrs in lr_of.values()):
        twice = next(p for p, lrs in lr_of.items() if len(lrs) > 1)
        return hint(f"`{twice}` is in two groups: each parameter may appear in one group only "
                    "(put the head's parameters in the head group, the rest in the body group).")
    frozen = sorted(set(lr_of) & ref["frozen"])
    if frozen:
        return hint(f"{len(frozen)} frozen parameter tensors are in your groups {where}, e.g. `{frozen[0]}`: "
                    "leave out every parameter with `requires_grad=False`, or weight decay and momentum "
                    "may still move them.")
    missing = sorted((ref["head"] | ref["body"]) - set(lr_of))
    if missing:
        return hint(f"{len(missing)} trainable parameter tensors are in no group {where}, e.g. "
                    f"`{missing[0]}`: every parameter that trains needs a group, or it never learns.")
    if any(lrs[0] is None for lrs in lr_of.values()):
        return hint("Give every group its own `'lr'`.")
    head_lrs = {lr_of[p][0] for p in ref["head"]}
    body_lrs = {lr_of[p][0] for p in ref["body"]}
    if head_lrs == {body_lr} and body_lrs == {head_lr}:
        return hint("The learning rates are swapped: the new head, which starts from random weights, "
                    "learns at `head_lr`; the pretrained body only needs nudging, at `body_lr`.")
    if head_lrs != {head_lr}:
        return hint(f"The head's parameters should learn at `head_lr` ({head_lr:g}) {where}, not "
                    f"{', '.join(f'{lr:g}' for lr in sorted(head_lrs))}.")
    if body_lrs != {body_lr}:
        return hint(f"Every trainable parameter of the body should learn at `body_lr` ({body_lr:g}) "
                    f"{where}, not {', '.join(f'{lr:g}' for lr in sorted(body_lrs))}.")
    if case.get("optimizer_error"):
        return hint(f"`torch.optim.AdamW(groups)` fails: `{case['optimizer_error']}`.")
    return None


def groups_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _groups_cases(strict), _groups_verdict, answer="make_param_groups",
        should_be="a function `make_param_groups(model, head_lr, body_lr)`", where="on {0}",
        error_extra=extra_for_kind("resnet", " Find the head with `tl.head(model)`: in a ResNet it is `model.fc`."),
    ) or passed("The head moves fast, the pretrained body slowly, and the frozen stages not at all: "
                "that is what `tl.param_groups` does stage by stage.")


register(Task("03.groups", "Discriminative learning rates", points=2, answer="make_param_groups",
              evidence=groups_evidence, judge=groups_judge))


# ---------------------------------------------------------------- 03.moved

def _moved_cases(strict: bool) -> list[tuple[str, str]]:
    cases = [("a ResNet-18 whose stages moved by different amounts", "resnet")]
    if strict:
        cases += [("the pretrained backbone", "backbone")]
    return cases


def _moved_pair(kind: str) -> tuple[nn.Module, nn.Module]:
    """A model and a copy whose stages moved by known, different amounts (buffers moved too)."""
    torch.manual_seed(0)
    if kind == "backbone":  # torchvision and timm models: any copy of tlcourse knows their stages
        before = models.load_backbone()
    else:
        import torchvision

        before = torchvision.models.resnet18(weights=None, num_classes=2)
    after = copy.deepcopy(before)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for i, stage in enumerate(models.stages(after).values()):
            scale = 10.0 ** (-3 + i % 4)  # 0.1%, 1%, 10%, 100% of each tensor's spread
            for param in stage.parameters():
                param.add_(scale * (param.std() + 1e-3) * torch.randn(param.shape, generator=generator))
            for buffer in stage.buffers():
                if buffer.is_floating_point():
                    buffer.add_(1.0 + torch.rand(buffer.shape, generator=generator))
    return before, after


def _moved_case(answer, name: str, kind: str) -> dict:
    before, after = _moved_pair(kind)
    result, problem = call_answer(answer, before, after)
    return {"case": name, **(problem or dict_of_numbers(result))}


def moved_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _moved_cases(strict), _moved_case)


@lru_cache(maxsize=4)
def _moved_reference(kind: str) -> dict[str, dict[str, float]]:
    """The right answer per stage, and what typical mistakes give."""
    before, after = _moved_pair(kind)
    right = finetune.weight_change(before, after)
    variants: dict[str, dict[str, float]] = {"right": right, "absolute": {}, "after_norm": {},
                                            "per_tensor": {}, "buffers": {}, "squared": {}}
    with torch.no_grad():
        for (name, old), new in zip(models.stages(before).items(), models.stages(after).values()):
            old_w = torch.cat([p.flatten() for p in old.parameters()])
            new_w = torch.cat([p.flatten() for p in new.parameters()])
            variants["absolute"][name] = float((new_w - old_w).norm())
            variants["after_norm"][name] = float((new_w - old_w).norm() / new_w.norm())
            variants["squared"][name] = float(((new_w - old_w).norm() / old_w.norm()) ** 2)
            variants["per_tensor"][name] = float(torch.stack(
                [(b - a).norm() / a.norm() for a, b in zip(old.parameters(), new.parameters()) if a.norm() > 0]).mean())
            old_s = torch.cat([t.flatten().float() for t in old.state_dict().values()])
            new_s = torch.cat([t.flatten().float() for t in new.state_dict().values()])
            variants["buffers"][name] = float((new_s - old_s).norm() / old_s.norm())
    return variants


def _same(values: dict, reference: dict, rtol: float = 1e-3) -> bool:
    return all(values.get(k) is not None and abs(values[k] - v) <= rtol * abs(v) + 1e-7 for k, v in reference.items())


def _moved_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    if "values" not in case:
        return hint(f"`relative_change` should return a dict `{{stage name: number}}`, not "
                    f"{case.get('type', 'None')}.")
    variants = _moved_reference(expected[1])
    values, right = case["values"], variants["right"]
    if set(values) != set(right):
        return hint(f"Give one number per stage of `tl.stages(before)`, keyed by the stage's name "
                    f"({', '.join(right)}); you gave {', '.join(values) or 'none'}.")
    if _same(values, right):
        return None
    if _same(values, variants["absolute"]):
        return hint("That is how far the weights moved, not how far *relative to their size*: divide "
                    "by the norm of the stage's weights before training.")
    if _same(values, variants["after_norm"]):
        return hint("Divide by the norm of the weights **before** training, not after.")
    if _same(values, variants["squared"]):
        return hint("These are squared: take the norm (`.norm()`), not the sum of squares.")
    if _same(values, variants["per_tensor"]):
        return hint("You averaged one ratio per tensor. Treat each stage's parameters as one long "
                    "vector (`torch.cat` of the flattened tensors) and take one ratio of norms.")
    if _same(values, variants["buffers"]):
        return hint("That includes BatchNorm's running statistics (buffers, from `state_dict`). Use "
                    "the stage's `parameters()` only: those are the weights training moves.")
    return hint(f"The numbers differ from the reference {where}: per stage, "
                "||w_after - w_before|| / ||w_before|| over all of the stage's parameters.")


def moved_judge(evidence: dict, strict: bool) -> Verdict:
    return judge_cases(
        evidence, _moved_cases(strict), _moved_verdict, answer="relative_change",
        should_be="a function `relative_change(before, after)`", where="on {0}",
    ) or passed("Now you can see what a learning rate does to pretrained weights: a small one nudges "
                "them by a fraction of a percent, a large one rewrites them.")


register(Task("03.moved", "How far did the weights move?", points=2, answer="relative_change",
              evidence=moved_evidence, judge=moved_judge))


# ---------------------------------------------------------------- 03.epoch

def _epoch_cases(strict: bool) -> list[tuple[str, int]]:
    cases = [("a small CNN with SGD, 40 examples in batches of 16", 0)]
    if strict:
        cases += [("a small CNN with a frozen first stage, AdamW, shuffled batches of 12", 1)]
    return cases


def _epoch_setup(variant: int):
    """A model (handed over in eval mode), a loader, an optimizer and a loss, all fixed by seeds."""
    torch.manual_seed(variant)
    model = models.SmallCNN(num_classes=2, width=4)
    x = _random((40 if variant == 0 else 30, 3, 16, 16), seed=30 + variant)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
    if variant == 0:
        loader = train.tensor_loader(x, y, batch_size=16)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        freezing.freeze(models.stages(model)["stage1"])
        loader = train.tensor_loader(x, y, batch_size=12, shuffle=True, seed=5)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.eval()
    return model, loader, optimizer, nn.CrossEntropyLoss()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: as_plain_tensor(v).float() for k, v in model.state_dict().items() if v.is_floating_point()}


def _epoch_case(answer, name: str, variant: int) -> dict:
    model, loader, optimizer, loss_fn = _epoch_setup(variant)
    result, problem = call_answer(answer, model, loader, optimizer, loss_fn, none_ok=True)
    if problem:
        return {"case": name, **problem}
    try:
        loss = None if result is None else float(result)
    except Exception:
        return {"case": name, "type": type(result).__name__}
    return {"case": name, "loss": loss, "state": _state(model.cpu())}


def epoch_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _epoch_cases(strict), _epoch_case)


@lru_cache(maxsize=16)
def _epoch_reference(variant: int, mistake: str = "none") -> tuple[dict, dict]:
    """The final weights and the loss summaries of a correct epoch (or of a typical mistake)."""
    model, loader, optimizer, loss_fn = _epoch_setup(variant)
    model.train(mistake != "eval")
    losses, sizes = [], []
    for x, y in loader:
        loss = loss_fn(model(x), y)
        if mistake != "no_zero_grad":
            optimizer.zero_grad()
        loss.backward()
        if mistake != "no_step":
            optimizer.step()
        losses.append(loss.item())
        sizes.append(len(y))
    weighted = sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)
    summaries = {"weighted": weighted, "mean": sum(losses) / len(losses), "last": losses[-1], "sum": sum(losses),
                 "first": losses[0]}
    return _state(model), summaries


def _same_state(state: dict, reference: dict) -> bool:
    return set(state) == set(reference) and all(close(state[k], reference[k], atol=1e-4, rtol=1e-3) for k in reference)


def _epoch_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    variant = expected[1]
    if "state" not in case:
        return hint(f"`train_one_epoch` should return the epoch's mean loss as a number, not {case.get('type')}.")
    state = case["state"]
    right_state, right_loss = _epoch_reference(variant)
    if not _same_state(state, right_state):
        initial = _state(_epoch_setup(variant)[0])
        params_moved = any(not torch.equal(state[k], initial[k]) for k in initial if k in state
                           and "running" not in k and "num_batches" not in k)
        if not params_moved:
            return hint(f"The weights did not change {where}: call `optimizer.step()` after `loss.backward()`.")
        if _same_state(state, _epoch_reference(variant, "no_zero_grad")[0]):
            return hint("Gradients piled up from batch to batch: call `optimizer.zero_grad()` before "
                        "each `loss.backward()`.")
        if _same_state(state, _epoch_reference(variant, "eval")[0]):
            return hint("The model trained in eval mode (it arrives that way): call `model.train()` "
                        "first. Frozen BatchNorm layers stay in eval mode anyway (`tl.freeze`).")
        return hint(f"The weights after the epoch differ from the reference {where}. For each batch: "
                    "forward, loss, `zero_grad`, `backward`, `step`, once per batch, in the loader's order.")
    loss = case["loss"]
    if loss is None:
        return hint("The model trained correctly; now return the epoch's mean training loss.")
    if any(abs(loss - right_loss[k]) <= 1e-4 * max(1.0, abs(right_loss[k])) for k in ("weighted", "mean")):
        return None
    if abs(loss - right_loss["last"]) <= 1e-5:
        return hint("That is the last batch's loss: return the mean over the whole epoch.")
    if abs(loss - right_loss["sum"]) <= 1e-4 * right_loss["sum"]:
        return hint("That is the sum of the batch losses: divide by the number of batches (or weight "
                    "each batch by its size and divide by the number of examples).")
    return hint(f"The weights are right, but the returned loss is not the epoch's mean training loss {where}.")


def epoch_judge(evidence: dict, strict: bool) -> Verdict:
    expected = _epoch_cases(strict)

    def trains_nothing(cases: list[dict]) -> bool:
        untouched = [_epoch_setup(variant)[0] for _, variant in expected]
        return all(c.get("loss") is None and "state" in c and _same_state(c["state"], _state(m))
                   for c, m in zip(cases, untouched))

    return judge_cases(
        evidence, expected, _epoch_verdict, answer="train_one_epoch",
        should_be="a function `train_one_epoch(model, loader, optimizer, loss_fn)`", where="on {0}",
        unattempted=trains_nothing, unattempted_message="`train_one_epoch` returns `None` so far and trains nothing.",
    ) or passed("That is the loop inside `tl.fit`. Run it on cached activations and the top of the "
                "backbone learns at a fraction of the cost of full images.")


register(Task("03.epoch", "One epoch of fine-tuning, by hand", points=3, answer="train_one_epoch",
              evidence=epoch_evidence, judge=epoch_judge))
