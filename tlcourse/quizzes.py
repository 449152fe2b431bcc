"""Self-check questions and flashcards for every lesson, stored as data, plus a text quiz for the terminal.

A notebook shows them with ``tl.quiz_bank("01")`` and ``tl.flashcards("01")`` (``tlcourse.widgets``);
a terminal runs them with ``python -m tlcourse.quiz 01``. The answer logic lives in
:meth:`Question.check`, so both front ends give the same feedback.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import zlib
from dataclasses import dataclass, replace

REVEAL_AFTER = 2  # wrong attempts after which a question shows its answer


@dataclass(frozen=True)
class Feedback:
    """What a learner sees after choosing an option."""

    correct: bool
    message: str
    revealed: bool = False  # True when the message gives the answer away


@dataclass(frozen=True)
class Question:
    """One single-choice question: ``answer`` is the index of the right option in ``options``."""

    prompt: str
    options: tuple[str, ...]
    answer: int
    explanation: str
    hint: str = ""

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"A question needs at least two options; got {list(self.options)}.")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"The options of a question must differ; got {list(self.options)}.")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer={self.answer} is not an index into the {len(self.options)} options.")

    def check(self, choice: int | str, attempt: int = 1) -> Feedback:
        """Feedback on ``choice`` (an option or its index) at the learner's ``attempt``-th try.

        A right answer gets the explanation. A wrong one gets the hint, and after
        ``REVEAL_AFTER`` wrong tries the right answer with its explanation.
        """
        index = self.options.index(choice) if isinstance(choice, str) else int(choice)
        if not 0 <= index < len(self.options):
            raise ValueError(f"choice={choice!r} is not one of the {len(self.options)} options.")
        if index == self.answer:
            return Feedback(True, f"Correct. {self.explanation}")
        if attempt >= REVEAL_AFTER:
            return Feedback(False, f"Not quite. The answer is: {self.options[self.answer]}. {self.explanation}", True)
        return Feedback(False, f"Not quite. {self.hint or 'Read the options again and try another one.'}")


def make_question(question: str, options, answer: int | str, explanation: str, hint: str = "") -> Question:
    """A :class:`Question` whose ``answer`` may be given as the right option's text or its index."""
    options = tuple(str(o) for o in options)
    if isinstance(answer, str):
        if answer not in options:
            raise ValueError(f"answer={answer!r} is not one of the options {list(options)}.")
        answer = options.index(answer)
    return Question(question, options, int(answer), explanation, hint)


@dataclass(frozen=True)
class Flashcard:
    """A card to recall: ``front`` is a term or a question, ``back`` the answer.

    ``kind`` is "term" (defined in GLOSSARY.md), "fact", "mnemonic" or "example" (a real-world case).
    """

    front: str
    back: str
    kind: str = "term"


def _mixed(question: Question) -> Question:
    """The same question with its options in a fixed pseudo-random order, so the answer's place gives nothing away."""
    order = list(range(len(question.options)))
    random.Random(zlib.crc32(question.prompt.encode())).shuffle(order)
    return replace(question, options=tuple(question.options[i] for i in order), answer=order.index(question.answer))


Q, F = Question, Flashcard

# Written with the answer's index as it reads best; _mixed (at the end of the table) reorders the options.

QUESTIONS: dict[str, list[Question]] = {
    "01": [
        Q("You set requires_grad=False on every parameter of a pretrained backbone and call model.train(). "
          "What still changes when batches go through it?",
          ("Nothing: every parameter is frozen",
           "The BatchNorm running mean and variance",
           "The weights of the convolution layers",
           "The learning rate"),
          1, "BatchNorm's running statistics are buffers, not parameters, so requires_grad does not protect them; "
             "in train mode they drift towards the statistics of your batches. Keep frozen BatchNorm layers in "
             "eval mode, as tl.freeze does.",
          "Which numbers in a network are not parameters, but still get updated in train mode?"),
        Q("You replace EfficientNet-Lite0's head with a 2-class linear layer on its 1,280 pooled features and "
          "freeze everything else. How many parameters train?",
          ("2", "1,280", "2,562", "about 4.7 million"),
          2, "1,280 x 2 weights plus 2 biases = 2,562: a tiny fraction of the network, which is why a few "
             "hundred labelled images are enough to train it.",
          "A linear layer has one weight per input per output, plus one bias per output."),
        Q("Which layers of an ImageNet network hold the most generic features (edges, colours, textures)?",
          ("The early stages, near the input", "The late stages, near the head", "The classifier head",
           "All layers are equally generic"),
          0, "Early stages respond to edges and textures that almost every image task needs; late stages "
             "respond to object parts specific to ImageNet's classes (Yosinski et al., 2014).",
          "Look at the feature maps of the stem and of stage 6 again: which still shows the cat?"),
        Q("Your data set is small and looks like ImageNet photos (pets, food, vehicles). What do you try first?",
          ("Train a large network from scratch",
           "Feature extraction: a frozen backbone and a new head",
           "Fine-tune the whole network with a large learning rate",
           "Collect data until you have a million images"),
          1, "Small and similar is the easy cell of the table: the pretrained features fit almost as they are, "
             "and with few images a new head alone is the safest choice.",
          "Think of the decision table: data size x similarity."),
        Q("The ImageNet head answers nonsense, with low confidence, for a solar-cell image. What does that say "
          "about using the network for solar cells?",
          ("Nothing good: the network is useless for solar cells",
           "Only that the 1,000 ImageNet labels do not fit; the features below the head may still help",
           "That the image must be converted to colour first",
           "That the network needs a bigger input size"),
          1, "The head can only answer in ImageNet's 1,000 classes. The body computes edges, lines and "
             "textures, and cracks are made of such patterns: replace the head and measure (lesson 02).",
          "Which part of the network is replaced in transfer learning anyway?"),
        Q("What does tl.freeze(module) do that a loop setting requires_grad_(False) does not?",
          ("It deletes the module's gradients from memory",
           "It also keeps the frozen BatchNorm layers in eval mode, even after model.train()",
           "It moves the module to the CPU",
           "It converts the weights to half precision"),
          1, "tl.freeze registers a forward pre-hook that puts each frozen BatchNorm layer back into eval mode, "
             "so its stored ImageNet statistics are used and never overwritten.",
          "Remember the BatchNorm trap of section 4."),
    ],
    "02": [
        Q("Why can the features of a frozen backbone be computed once and cached on disk?",
          ("Because the backbone is small",
           "Because a frozen backbone in eval mode maps the same image to the same features every time",
           "Because the features are compressed",
           "Because the head is trained with a large learning rate"),
          1, "Nothing in a frozen, eval-mode backbone changes, so its output for an image never changes: pay for "
             "the expensive forward pass once, then train heads on the cached features in seconds.",
          "What would have to change for the features of one image to change?"),
        Q("What does a linear probe measure?",
          ("How fast the backbone runs",
           "How linearly separable the classes are in a layer's frozen features",
           "How many parameters the head has",
           "How much the backbone's weights change during fine-tuning"),
          1, "A linear classifier on frozen features can only succeed when the features already separate the "
             "classes. Its accuracy is a cheap measure of how useful a layer is for the new task.",
          "A probe trains only one linear layer. What can it learn, and what must the features already do?"),
        Q("Always answering 'functional' scores 68.7% on ELPV. Why does the course also report balanced accuracy?",
          ("It is always higher",
           "It averages the accuracy of each class, so a model that ignores the defective class scores only 50%",
           "It counts only the defective cells",
           "The paper does not report plain accuracy"),
          1, "With imbalanced classes, plain accuracy flatters a model that always predicts the majority class; "
             "balanced accuracy does not.",
          "What would balanced accuracy be for a model that always answers 'functional'?"),
        Q("You try five regularisation strengths for the probe. Which split do you choose the best one on?",
          ("The test split", "The validation split carved from the training part", "The training split itself",
           "Whichever split gives the highest number"),
          1, "Choices made on the test split leak it into the model, and its score is no longer an honest "
             "estimate. Tune on validation, report on test once.",
          "Which split must stay untouched until the very end?"),
        Q("Why does the lesson also train logistic regression on raw pixels and a small CNN from scratch?",
          ("To make the notebook longer",
           "As baselines: transfer learning is only worth it if it beats them on the same split",
           "Because the backbone needs them",
           "To compute the embeddings"),
          1, "A result means little without a baseline. The same split, the same metrics and the same test cells "
             "make the comparison fair.",
          "How would you know that the pretrained features helped at all?"),
        Q("Why is random data augmentation awkward when you train on cached features?",
          ("Augmentation is forbidden with frozen backbones",
           "Each augmented image would need a new forward pass, which the cache was meant to avoid",
           "Cached features cannot be shuffled",
           "The head cannot learn from augmented features"),
          1, "The cache stores one feature vector per image. New random flips each epoch mean new features each "
             "epoch; either cache a few fixed augmented copies or fine-tune on images (lesson 03).",
          "What exactly does the cache store, per image?"),
    ],
    "03": [
        Q("Why does fine-tuning use a small learning rate for the pretrained layers?",
          ("Small learning rates train faster",
           "Large steps would wreck the useful pretrained weights in a few updates",
           "The optimizer cannot handle large learning rates",
           "Because BatchNorm requires it"),
          1, "The pretrained weights are already good; fine-tuning should adjust them, not overwrite them with "
             "the noise of a randomly initialised head's gradients.",
          "What do you want to keep from the pretrained weights?"),
        Q("With discriminative learning rates, which part gets the largest learning rate?",
          ("The stem", "The early stages", "The new head", "All parts get the same one"),
          2, "The head starts from random weights and has everything to learn; pretrained stages need only small "
             "adjustments, and the earliest, most generic ones the smallest (tl.param_groups).",
          "Which part starts from random weights?"),
        Q("Which stages do you unfreeze first when fine-tuning on data unlike ImageNet?",
          ("The stem and first stages", "The last stages, below the head", "A random half of the stages",
           "None: only the head ever trains"),
          1, "The late stages hold the features most specific to ImageNet, so they fit a new task least well; "
             "the early, generic stages are kept frozen longest.",
          "Early layers are generic, late layers are specific."),
        Q("What is gradual unfreezing for?",
          ("To save disk space",
           "Training the head first, so a random head does not send large gradients into the pretrained stages",
           "To make BatchNorm layers train faster",
           "To avoid computing a validation score"),
          1, "Once the head is sensible, its gradients are small and informative; then stages are unfrozen one at "
             "a time from the top.",
          "What is the head like at the very first step of training?"),
        Q("Fine-tuning with small batches on a very different domain, what does tl.freeze(..., batchnorm='train') "
          "change compared with the default?",
          ("Nothing", "The frozen BatchNorm layers re-estimate their statistics on the new data",
           "The BatchNorm weights get gradients", "The layers are removed"),
          1, "batchnorm='train' lets the running statistics adapt to the new domain; the default 'eval' keeps the "
             "ImageNet ones. Either can win: compare them on a validation split, knowingly.",
          "BatchNorm has stored statistics and learnable weights; which one does the policy choose about?"),
        Q("Which augmentation keeps a solar-cell image a valid solar cell with the same label?",
          ("Flips and 90-degree rotations", "Random crops that may cut the crack away",
           "Replacing it with a photo of a cat", "Changing its label at random"),
          0, "A cell flipped or rotated by 90 degrees is still a cell with the same defects; a crop can remove the "
             "very defect that gives the label.",
          "Would an expert give the transformed image the same label?"),
        Q("The bottom stages are frozen and only the top stages fine-tune. What makes this cheap on a CPU?",
          ("Nothing, it is as slow as full training",
           "The frozen bottom's activations can be computed once and cached, so each epoch only runs the top",
           "The CPU skips frozen layers automatically, even in the forward pass",
           "Smaller images"),
          1, "tl.split_at cuts the model; the frozen bottom's output for each image never changes, so it is "
             "cached like features, and training only runs (and back-propagates through) the top stages.",
          "What part of the computation gives the same result every epoch?"),
    ],
    "04": [
        Q("As the training set shrinks from the full split to 5 images per class, which strategy usually loses "
          "the most accuracy?",
          ("Feature extraction", "Fine-tuning", "Training from scratch", "They lose the same"),
          2, "From scratch must learn its visual vocabulary from the training images alone; with a handful of "
             "images it cannot. The pretrained strategies borrow that vocabulary.",
          "Which strategy has to learn edges and textures from your data alone?"),
        Q("Why does lesson 04 train every strategy with several seeds at each size?",
          ("To make the plot colourful",
           "Small training sets make results vary a lot from run to run; one run can mislead",
           "Seeds make training faster",
           "The test set changes with the seed"),
          1, "With 5 images per class, which images you drew matters a lot. Mean +/- std over seeds shows the "
             "effect and the noise; a gap smaller than the noise is no gap.",
          "Would a second draw of 10 images per class give the same accuracy?"),
        Q("One run on ELPV's 656 test cells has a standard error of about 1.3 points. Strategy A beats B by "
          "0.8 points in one run. What do you conclude?",
          ("A is better", "B is better", "Nothing yet: the gap is within the noise", "The test set is broken"),
          2, "A difference smaller than its standard error is not evidence. Repeat over seeds and compare the gap "
             "with the spread.",
          "Compare the gap with the standard error."),
        Q("What makes the comparison of the three strategies fair?",
          ("Each strategy gets its own best test split",
           "The same training subsets, the same test cells and choices made without looking at the test set",
           "Training every strategy for the same number of epochs, whatever the data size",
           "Using the largest model"),
          1, "Only the strategy may differ: same data, same test cells, same metrics, tuning on validation.",
          "What should differ between the runs you compare, and what should not?"),
        Q("With very few labels (5 per class), why is feature extraction often as good as fine-tuning, or better?",
          ("Fine-tuning cannot run on small data",
           "It trains far fewer parameters, so it overfits less when labels are scarce",
           "Feature extraction uses a bigger model",
           "It uses the test set"),
          1, "Fine-tuning moves many weights on the evidence of a few images; a linear head has little room to "
             "overfit. With more data, fine-tuning's extra freedom starts to pay.",
          "Count the parameters each strategy trains."),
        Q("Which claim does the data-efficiency curve test directly?",
          ("That transfer learning needs less data for the same accuracy",
           "That GPUs are faster than CPUs",
           "That ImageNet has 1,000 classes",
           "That BatchNorm statistics drift"),
          0, "Read the curve horizontally: how many images does each strategy need to reach a given accuracy? "
             "The time each run took tests the 'less training time' claim.",
          "The x-axis is the number of training images."),
    ],
    "05": [
        Q("You train a linear probe on the pooled output of every stage. What does the row of accuracies tell you?",
          ("Which layers' features transfer to the new task",
           "How fast each stage runs",
           "How many parameters each stage has",
           "Nothing, probes only work on the last layer"),
          0, "A probe per stage measures how useful each level of features is for the target. On data far from "
             "ImageNet, mid-level features can be nearly as useful as the last ones.",
          "A probe measures the features of the layer it is trained on."),
        Q("ELPV images are greyscale, the backbone expects 3 channels. What is the usual fix?",
          ("Retrain the first layer from scratch",
           "Repeat the grey channel three times and normalise as in pretraining",
           "Colourise the images with a GAN",
           "Drop two channels of the network"),
          1, "Repeating the channel gives the pretrained first layer the input shape it expects; normalising like "
             "the pretraining data keeps the activations on the scale the weights were trained for.",
          "What is the smallest change that keeps every pretrained weight usable?"),
        Q("You train on mono-crystalline cells and test on poly-crystalline cells. Accuracy drops. What is this?",
          ("Overfitting to the test set", "A domain shift inside the data set", "A bug in the metrics",
           "A too-small learning rate"),
          1, "The two module types look different: training and test data come from different distributions. "
             "Report accuracy per module type to see it.",
          "Are the training and the test images drawn from the same distribution?"),
        Q("Can an ImageNet model start a text-classification task?",
          ("Yes, always: pretrained is pretrained",
           "Usually not: a change of modality calls for a model pretrained on that modality",
           "Yes, if the text is rendered as an image",
           "Only on a GPU"),
          1, "Image features (edges, textures) say little about words. For text, start from a language model; for "
             "audio, from an audio model.",
          "What did the image network learn to detect?"),
        Q("When does transfer from ImageNet help least?",
          ("Small data that looks like ImageNet",
           "Lots of target data that is very different from ImageNet",
           "Tiny data sets of natural photos",
           "It always helps equally"),
          1, "With much data from a distant domain, training from scratch (or on in-domain pretraining) becomes "
             "competitive; measure it instead of assuming.",
          "Think of the decision table: size x similarity."),
        Q("How does the course say how far solar cells are from ImageNet?",
          ("By eye only",
           "By measuring a distance between the embedding distributions (e.g. MMD) of the data sets",
           "By counting the pixels",
           "By the file size of the images"),
          1, "Embed samples of each data set with the same backbone and compare the distributions; a larger "
             "distance predicts that less of the pretrained knowledge transfers as is.",
          "Which representation of an image does the course compare data sets in?"),
    ],
    "06": [
        Q("How must your own images be laid out for tl.load_image_folder?",
          ("All images in one folder, labels in the file names",
           "root/<class name>/<image>: one sub-folder per class",
           "A single zip file",
           "One folder per image"),
          1, "The ImageFolder layout: each class is a folder of images; the folder names are the class names.",
          "Where does the label of each image come from?"),
        Q("One of your images is a corrupt file. What does tl.load_image_folder do?",
          ("Skips it silently",
           "Raises an error that names the file and says to replace or delete it",
           "Replaces it with a black image",
           "Crashes later, in the middle of training"),
          1, "Every image is opened once when the dataset is made, so a bad file is reported by name before any "
             "training starts. Nothing is skipped silently.",
          "The course's rule: a bad input gets a clear error."),
        Q("You are offline and call tl.load_backbone('resnet18') without its weights in torch's cache. "
          "What happens?",
          ("It hangs until the network returns",
           "A clear error says the weights are missing and suggests efficientnet_lite0, which ships with the course",
           "It silently uses random weights",
           "It downloads them anyway"),
          1, "Only EfficientNet-Lite0 is bundled; other torchvision weights must be downloaded once while online.",
          "Which backbone works offline?"),
        Q("You add 20 images to a class folder. Why are the cached features not reused by mistake?",
          ("They are; you must clear the cache by hand",
           "The cache key includes every file's path, size and modification time, so the folder gets new features",
           "The cache expires after an hour",
           "Features are never cached for your own folders"),
          1, "tl.extract_features keys its cache on the model's weights, the data's fingerprint and the transform.",
          "What goes into the cache key?"),
    ],
}

QUESTIONS = {lesson: [_mixed(q) for q in items] for lesson, items in QUESTIONS.items()}

FLASHCARDS: dict[str, list[Flashcard]] = {
    "01": [
        F("Transfer learning", "Reusing what a model learned on a source task (ImageNet) for a target task, to need "
          "less data, less time, or get better results than starting from nothing."),
        F("Pretrained model", "A model whose weights were already fitted on a large data set; here "
          "EfficientNet-Lite0 trained on ImageNet-1k (1.28 M photos, 1000 classes)."),
        F("Backbone", "Everything except the final classifier: the part that turns an image into features."),
        F("Stage", "A group of layers at one resolution. Early stages: edges, textures (generic). Late stages: "
          "object parts (specific)."),
        F("Head", "The task-specific layers on top of the backbone; transfer learning replaces it "
          "(tl.replace_head)."),
        F("Frozen layer", "A layer whose weights do not change during training (requires_grad=False)."),
        F("BatchNorm (batch normalisation)", "Normalises activations with a mean and variance; in train mode it "
          "uses batch statistics and updates its running statistics, even when its weights are frozen."),
        F("The BatchNorm trap", "requires_grad=False does not stop running statistics from moving in train mode: "
          "keep frozen BatchNorm layers in eval mode (tl.freeze does).", "fact"),
        F("Early = edges, late = labels", "Early layers hold generic features that transfer almost anywhere; late "
          "layers hold features specific to the source labels.", "mnemonic"),
        F("Size x similarity", "Small + similar: feature extraction. Large + similar: fine-tune. Small + different: "
          "extract (maybe earlier stages), fine-tune gently, compare with scratch. Large + different: fine-tune "
          "most, scratch competes.", "fact"),
        F("Real world: 300 chest X-rays", "Small and different: feature extraction first, try earlier stages, "
          "compare with a small CNN from scratch, and prefer a model pretrained on medical images if one exists.",
          "example"),
    ],
    "02": [
        F("Feature extraction", "Using a frozen backbone as a fixed function from images to feature vectors, then "
          "training only a new head on them."),
        F("Embedding", "The feature vector a backbone produces for one input: 1280 numbers for EfficientNet-Lite0."),
        F("Linear probe", "A linear classifier trained on frozen features; its accuracy measures how linearly "
          "useful the features are."),
        F("Validation split", "Training data held out to make choices; the test split is used once, at the end."),
        F("Baseline", "A simple reference a method must beat: majority class, raw-pixel logistic regression, a "
          "small CNN from scratch."),
        F("Balanced accuracy", "The mean of the per-class accuracies; not flattered by predicting the majority "
          "class."),
        F("ROC AUC", "The probability that a random positive gets a higher score than a random negative; 0.5 is "
          "chance."),
        F("Compute once, train many", "A frozen backbone's features never change: cache them, then every head "
          "trains in seconds.", "mnemonic"),
        F("Real world: a factory's inspection camera", "A few hundred labelled photos of parts: cache the "
          "embeddings once, try several cheap heads, and keep the one that wins on validation.", "example"),
    ],
    "03": [
        F("Fine-tuning", "Continuing to train some or all pretrained layers on the target task with a small "
          "learning rate."),
        F("Learning rate", "The size of each optimisation step; too large wrecks pretrained weights, too small "
          "learns nothing."),
        F("Discriminative learning rates", "Different learning rates per part of a model: largest for the new "
          "head, smaller for pretrained stages (tl.param_groups)."),
        F("Gradual unfreezing", "Train the head first, then unfreeze stages one at a time from the top."),
        F("Hyperparameter", "A setting chosen by the practitioner, not learned: learning rate, epochs, stages to "
          "unfreeze. Choose on validation, never on test."),
        F("Data augmentation", "Random label-preserving changes to training images (for solar cells: flips and "
          "90-degree rotations)."),
        F("Head fast, body slow", "The random head needs large steps; pretrained stages need small nudges.",
          "mnemonic"),
        F("Real world: a retailer's product photos", "Tens of thousands of photos similar to ImageNet: fine-tune "
          "the later stages with discriminative learning rates and augmentation.", "example"),
    ],
    "04": [
        F("From scratch", "Training a model whose weights start random, with no pretraining."),
        F("Baseline", "A simple reference result a method must beat to be worth it."),
        F("Mean +/- std over seeds", "Small training sets make runs vary; report several seeds and call a gap "
          "real only when it exceeds the noise.", "fact"),
        F("The data-efficiency curve", "Accuracy against training-set size for each strategy: read horizontally "
          "for 'less data needed', vertically for 'better accuracy'.", "fact"),
        F("Fewer labels, fewer trainable weights", "With 5-10 images per class, train a head on frozen features; "
          "fine-tune more as data grows.", "mnemonic"),
        F("Real world: a rare defect", "Only 10 examples of a new crack type: feature extraction, several seeds, "
          "and honest error bars before any claim.", "example"),
    ],
    "05": [
        F("Domain shift (distribution shift)", "A difference between the training data and the data a model is "
          "used on: ImageNet photos vs EL images, or mono vs poly cells."),
        F("Linear probe", "Trained on each stage's frozen features, it shows which layers transfer."),
        F("Greyscale to 3 channels", "Repeat the channel and normalise as in pretraining so every pretrained "
          "weight stays usable.", "fact"),
        F("Change of modality", "Text or audio need a model pretrained on text or audio, not an image network.",
          "fact"),
        F("Far data, more data, less transfer", "The further the domain and the larger the target data, the more "
          "training from scratch competes.", "mnemonic"),
        F("Real world: satellite images", "Different from ImageNet but still images: generic early features help; "
          "fine-tune late stages, or start from a model pretrained on remote sensing.", "example"),
    ],
    "06": [
        F("ImageFolder layout", "root/<class name>/<image>: one sub-folder per class; folder names are the labels.",
          "fact"),
        F("Clear errors, nothing skipped", "A corrupt image, an empty class folder or a wrong path raises an error "
          "that names the file or folder.", "fact"),
        F("Offline", "Only EfficientNet-Lite0 and ELPV ship with the course; torchvision models and data sets need "
          "the network once, and fail with a clear message without it.", "fact"),
    ],
}


def lesson_key(lesson: int | str) -> str:
    """``1``, ``"1"``, ``"01"`` and ``"01_transfer_learning_basics"`` all mean lesson ``"01"``."""
    match = re.match(r"^\s*(\d+)", str(lesson))
    key = match.group(1).zfill(2) if match else str(lesson)
    if key not in QUESTIONS:
        raise ValueError(f"No quiz for lesson {lesson!r}; there are quizzes for lessons {', '.join(QUESTIONS)}.")
    return key


def questions(lesson: int | str) -> list[Question]:
    """The self-check questions of one lesson."""
    return list(QUESTIONS[lesson_key(lesson)])


def cards(lesson: int | str) -> list[Flashcard]:
    """The flashcards of one lesson: glossary terms, key facts, mnemonics and real-world examples."""
    return list(FLASHCARDS[lesson_key(lesson)])


# ---------------------------------------------------------------- the terminal front end

def _read(prompt: str, ask) -> str | None:
    try:
        return ask(prompt)
    except EOFError:
        return None


def _parse_choice(text: str, n: int) -> int | None:
    """'2' or 'b' -> index 1; None when the text names no option."""
    text = text.strip().lower()
    if text.isdigit() and 1 <= int(text) <= n:
        return int(text) - 1
    if len(text) == 1 and "a" <= text < chr(ord("a") + n):
        return ord(text) - ord("a")
    return None


def run_text_quiz(lesson: int | str, ask=input, say=print) -> tuple[int, int]:
    """Ask a lesson's questions in a terminal; returns ``(right at the first try, questions)``."""
    items = questions(lesson)
    say(f"Lesson {lesson_key(lesson)} self-check: {len(items)} questions. Answer with a letter or a number.\n")
    first_try = 0
    for number, question in enumerate(items, start=1):
        say(f"{number}. {question.prompt}")
        for i, option in enumerate(question.options):
            say(f"   {chr(ord('a') + i)}) {option}")
        attempt = 0
        while True:
            text = _read("your answer: ", ask)
            if text is None:
                say(f"\nStopped. {first_try} of {number - 1} right at the first try.")
                return first_try, len(items)
            choice = _parse_choice(text, len(question.options))
            if choice is None:
                say(f"   Type a letter a-{chr(ord('a') + len(question.options) - 1)} or a number.")
                continue
            attempt += 1
            feedback = question.check(choice, attempt)
            say(f"   {feedback.message}\n")
            if feedback.correct:
                first_try += attempt == 1
            if feedback.correct or feedback.revealed:
                break
    say(f"{first_try} of {len(items)} right at the first try.")
    return first_try, len(items)


def run_text_flashcards(lesson: int | str, ask=input, say=print) -> int:
    """Show a lesson's flashcards one by one: press Enter to turn a card; returns how many were seen."""
    deck = cards(lesson)
    say(f"Lesson {lesson_key(lesson)} flashcards: {len(deck)} cards. Recall the back, then press Enter.\n")
    for number, card in enumerate(deck, start=1):
        say(f"[{number}/{len(deck)}] ({card.kind}) {card.front}")
        if _read("   ... ", ask) is None:
            return number - 1
        say(f"   {card.back}\n")
    return len(deck)


def answer_key(lesson: int | str) -> str:
    """Every question of a lesson with its answer and explanation, as plain text."""
    lines = []
    for number, q in enumerate(questions(lesson), start=1):
        lines.append(f"{number}. {q.prompt}\n   answer: {q.options[q.answer]}\n   {q.explanation}")
    return "\n\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m tlcourse.quiz 01 [--flashcards | --answers]``."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse.quiz",
                                     description="The self-check questions (or flashcards) of one lesson, in a terminal.")
    parser.add_argument("lesson", help=f"lesson number: {', '.join(QUESTIONS)}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--flashcards", action="store_true", help="go through the lesson's flashcards instead")
    mode.add_argument("--answers", action="store_true", help="print every question with its answer, no prompts")
    args = parser.parse_args(argv)
    try:
        lesson_key(args.lesson)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if args.answers:
        print(answer_key(args.lesson))
    elif args.flashcards:
        run_text_flashcards(args.lesson)
    else:
        run_text_quiz(args.lesson)
    return 0
