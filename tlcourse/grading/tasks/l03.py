"""Lesson 03's exercise tasks: augmentation, discriminative parameter groups, weight movement, a training epoch.

Every judge compares the learner's evidence with a reference computed here with the package's
own helpers (``stages``, ``freeze_until``, ``weight_change``) or a reference loop run on the
same inputs, never with a stored number. The hidden tests add inputs drawn fresh for each grading
run (:func:`checks.challenge`): images and the draws' seed, learning rates, weight moves, a model,
data and batch size; the judge, in the grader's process, recomputes the answer on those inputs.
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

def _augment_cases(strict: bool) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(case, image shape, draws, seed of the image and of the draws): the hidden test's images and
    their sizes are drawn for this run."""
    cases = [("a 3-channel 16 x 16 image", (3, 16, 16), 160, 0)]
    if strict:
        rng = fresh_random(61)
        for channels in (1, 3):
            side = rng.choice([20, 24, 28, 32, 40])
            cases.append((f"a {channels}-channel {side} x {side} image", (channels, side, side), 200,
                          rng.randrange(1, 2**31)))
    return cases


SAMPLED = 48  # pixels of each output kept as evidence: enough to tell the 8 poses of a random image apart


def _augment_image(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return _random(shape, seed=20 + seed)


def _sample_places(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The flat indices of the pixels kept from each output (fixed by the case's seed)."""
    numel = int(torch.tensor(shape).prod())
    return torch.randperm(numel, generator=torch.Generator().manual_seed(seed + 7))[:SAMPLED]


def _poses(image: torch.Tensor) -> list[torch.Tensor]:
    """The 8 poses of a square image: 4 quarter turns of it and of its mirror image."""
    return [torch.rot90(base, k, dims=(-2, -1)) for base in (image, image.flip(-1)) for k in range(4)]


def _augment_case(answer, name: str, shape: tuple[int, ...], draws: int, seed: int) -> dict:
    image = _augment_image(shape, seed)
    places = _sample_places(shape, seed)
    torch.manual_seed(seed)

    def draw() -> dict:
        """Each draw's kept pixels, and which draws returned None or another type or shape."""
        samples, none, other = torch.zeros(draws, SAMPLED), [], []
        for i in range(draws):
            out = answer(image.clone())
            if out is None:
                none.append(i)
            elif not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
                other.append(i)
            else:
                samples[i] = out.detach().cpu().float().reshape(-1)[places]
        return {"samples": samples, "none": none, "other": other}

    drawn, problem = call_answer(draw)
    return {"case": name, **problem} if problem else {"case": name, **drawn}


def augment_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _augment_cases(strict), _augment_case)


def _poses_drawn(case: dict, shape: tuple[int, ...], draws: int, seed: int) -> list[int] | None:
    """The pose of each draw, told apart here from its kept pixels: -3 for None, -2 for another type
    or shape, -1 for no pose at all; None for evidence of the wrong form."""
    samples, none, other = case.get("samples"), case.get("none"), case.get("other")
    if not isinstance(samples, torch.Tensor) or tuple(samples.shape) != (draws, SAMPLED) \
            or not isinstance(none, list) or not isinstance(other, list):
        return None
    places = _sample_places(shape, seed)
    poses = torch.stack([pose.reshape(-1)[places] for pose in _poses(_augment_image(shape, seed))])
    seen = []
    for i, sample in enumerate(samples.float()):
        if i in none:
            seen.append(-3)
        elif i in other:
            seen.append(-2)
        else:
            match = torch.isclose(poses, sample[None], atol=1e-5, rtol=1e-5).all(dim=1).nonzero().flatten()
            seen.append(int(match[0]) if len(match) else -1)
    return seen


ROTATIONS_ONLY, FLIPS_ONLY = {0, 1, 2, 3}, {0, 2, 4, 6}  # pose k<4: turned k times; k>=4: mirrored, then turned


def _augment_verdict(case: dict, expected: tuple, where: str) -> Verdict | None:
    _, shape, draws, seed = expected
    poses = _poses_drawn(case, shape, draws, seed)
    if poses is None:
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
        unattempted=lambda cases: all(isinstance(c.get("none"), list) and len(c["none"]) == draws
                                      for c, (_, _, draws, _) in zip(cases, _augment_cases(strict))),
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

def _moved_cases(strict: bool) -> list[tuple[str, str, int]]:
    """(case, model kind, seed of the moves): the hidden test's moves are drawn for this run."""
    cases = [("a ResNet-18 whose stages moved by different amounts", "resnet", 0)]
    if strict:
        rng = fresh_random(62)
        cases += [("a ResNet-18 whose stages moved by amounts drawn for this run", "resnet", rng.randrange(1, 2**31)),
                  ("the pretrained backbone", "backbone", rng.randrange(1, 2**31))]
    return cases


def _moved_pair(kind: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A model and a copy whose stages moved by known, different amounts (buffers moved too).

    Seed 0 moves the stages by 0.1%, 1%, 10%, 100% of each tensor's spread in turn; another seed
    draws each stage's amount and the moves themselves from it."""
    torch.manual_seed(0)
    if kind == "backbone":  # torchvision and timm models: any copy of tlcourse knows their stages
        before = models.load_backbone()
    else:
        import torchvision

        before = torchvision.models.resnet18(weights=None, num_classes=2)
    after = copy.deepcopy(before)
    generator = torch.Generator().manual_seed(1 if seed == 0 else seed)
    with torch.no_grad():
        for i, stage in enumerate(models.stages(after).values()):
            if seed == 0:
                scale = 10.0 ** (-3 + i % 4)
            else:
                scale = 10.0 ** float(torch.empty(()).uniform_(-3.5, 0.0, generator=generator))
            for param in stage.parameters():
                param.add_(scale * (param.std() + 1e-3) * torch.randn(param.shape, generator=generator))
            for buffer in stage.buffers():
                if buffer.is_floating_point():
                    buffer.add_(1.0 + torch.rand(buffer.shape, generator=generator))
    return before, after


def _moved_case(answer, name: str, kind: str, seed: int) -> dict:
    before, after = _moved_pair(kind, seed)
    result, problem = call_answer(answer, before, after)
    return {"case": name, **(problem or dict_of_numbers(result))}


def moved_evidence(answer, strict: bool) -> dict:
    return function_evidence(answer, _moved_cases(strict), _moved_case)


@lru_cache(maxsize=8)
def _moved_reference(kind: str, seed: int) -> dict[str, dict[str, float]]:
    """The right answer per stage, and what typical mistakes give."""
    before, after = _moved_pair(kind, seed)
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
    variants = _moved_reference(expected[1], expected[2])
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

def _epoch_cases(strict: bool) -> list[tuple[str, int, int]]:
    """(case, variant, seed): the hidden test's model, data, batch size and learning rate are drawn
    for this run from its seed."""
    cases = [("a small CNN with SGD, 40 examples in batches of 16", 0, 0)]
    if strict:
        seed = fresh_random(63).randrange(1, 2**31)
        batch, lr, _ = _epoch_settings(1, seed)
        cases += [(f"a small CNN with a frozen first stage, AdamW (lr {lr:g}), shuffled batches of {batch}", 1, seed)]
    return cases


def _epoch_settings(variant: int, seed: int) -> tuple[int, float, int]:
    """(batch size, learning rate, examples) of a case."""
    if seed == 0:
        return (16, 0.1, 40) if variant == 0 else (12, 1e-2, 30)
    rng = torch.Generator().manual_seed(seed)
    batch = int(torch.randint(7, 15, (), generator=rng))
    lr = round(float(10 ** torch.empty(()).uniform_(-2.5, -1.5, generator=rng)), 5)
    return batch, lr, int(torch.randint(25, 40, (), generator=rng))


def _epoch_setup(variant: int, seed: int = 0):
    """A model (handed over in eval mode), a loader, an optimizer and a loss, all fixed by seeds."""
    batch, lr, n = _epoch_settings(variant, seed)
    torch.manual_seed(variant if seed == 0 else seed)
    model = models.SmallCNN(num_classes=2, width=4)
    x = _random((n, 3, 16, 16), seed=30 + variant + seed)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
    if variant == 0:
        loader = train.tensor_loader(x, y, batch_size=batch)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        freezing.freeze(models.stages(model)["stage1"])
        loader = train.tensor_loader(x, y, batch_size=batch, shuffle=True, seed=5 + seed)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.eval()
    return model, loader, optimizer, nn.CrossEntropyLoss()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: as_plain_tensor(v).float() for k, v in model.state_dict().items() if v.is_floating_point()}


def _epoch_case(answer, name: str, variant: int, seed: int) -> dict:
    model, loader, optimizer, loss_fn = _epoch_setup(variant, seed)
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
def _epoch_reference(variant: int, seed: int, mistake: str = "none") -> tuple[dict, dict]:
    """The final weights and the loss summaries of a correct epoch (or of a typical mistake)."""
    model, loader, optimizer, loss_fn = _epoch_setup(variant, seed)
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
    _, variant, seed = expected
    if "state" not in case:
        return hint(f"`train_one_epoch` should return the epoch's mean loss as a number, not {case.get('type')}.")
    state = case["state"]
    right_state, right_loss = _epoch_reference(variant, seed)
    if not _same_state(state, right_state):
        initial = _state(_epoch_setup(variant, seed)[0])
        params_moved = any(not torch.equal(state[k], initial[k]) for k in initial if k in state
                           and "running" not in k and "num_batches" not in k)
        if not params_moved:
            return hint(f"The weights did not change {where}: call `optimizer.step()` after `loss.backward()`.")
        if _same_state(state, _epoch_reference(variant, seed, "no_zero_grad")[0]):
            return hint("Gradients piled up from batch to batch: call `optimizer.zero_grad()` before "
                        "each `loss.backward()`.")
        if _same_state(state, _epoch_reference(variant, seed, "eval")[0]):
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
        untouched = [_epoch_setup(variant, seed)[0] for _, variant, seed in expected]
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
