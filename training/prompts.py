"""Attribute prompts: questions (with paraphrases) and the fixed answer templates.

The score model's answer is ``"The <attribute> of the image is <level>."``; the model's
distribution over the five level words at the level position is the prediction. The
comparator's is ``"First. The first image has better <attribute>."`` (or Second): the two
answer words at the answer's first position are its prediction.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from scaling.errors import InputError

#: Level words in ascending score order (index k - 1 is level k).
LEVEL_WORDS = ("bad", "poor", "fair", "good", "excellent")

#: Question paraphrases; ``{attribute}`` is filled with the attribute's display name.
DEFAULT_QUESTIONS = (
    "How would you rate the {attribute} of this portrait?",
    "What do you think about the {attribute} of this image?",
    "Can you rate the {attribute} of the picture?",
    "Rate the {attribute} of the image.",
    "How is the {attribute} of this photo?",
    "What is your assessment of the {attribute} in this image?",
    "Please judge the {attribute} of this portrait.",
    "How good is the {attribute} of the image?",
    "Could you evaluate the {attribute} of this photo?",
    "Describe the {attribute} level of this picture.",
)

#: The comparator's answer words: the first image is better, the second image is better.
ANSWER_WORDS = ("First", "Second")
PAIR_QUESTION = "Which of the two images has better {attribute}? Answer {first} or {second}."
#: What precedes each image of a pair in the prompt (DepictQA names its images so too).
PAIR_IMAGE_LABELS = ("First image:", "Second image:")
#: Prepended to the question when the two images are shown as one side-by-side picture.
SIDE_BY_SIDE_NOTE = "The picture shows two images side by side, the first one on the left. "

#: Built-in attributes and the words used for them in prompts.
DEFAULT_ATTRIBUTES = {
    "quality": "quality",
    "overall": "overall quality",
    "noise": "noise",
    "detail": "detail",
    "details": "detail",
    "texture": "texture",
    "exposure": "exposure",
    "color": "color",
    "sharpness": "sharpness",
}


class PromptBook:
    """Questions and answers per attribute; paraphrases are sampled during training.

    ``attributes`` maps an attribute name (as in the training table) to the words used in the
    prompt; ``questions`` are templates with ``{attribute}``.
    """

    def __init__(
        self,
        attributes: Mapping[str, str] | None = None,
        questions: Sequence[str] = DEFAULT_QUESTIONS,
    ) -> None:
        self.attributes = dict(DEFAULT_ATTRIBUTES if attributes is None else attributes)
        if not questions:
            raise ValueError("at least one question template is needed")
        for template in questions:
            if "{attribute}" not in template:
                raise ValueError(f"question template {template!r} lacks '{{attribute}}'")
        self.questions = tuple(questions)

    def words(self, attribute: str) -> str:
        """The prompt words for ``attribute``; a clear error when there is no prompt for it."""
        try:
            return self.attributes[attribute]
        except KeyError:
            raise InputError(
                f"attribute {attribute!r} has no prompt; known attributes: "
                f"{sorted(self.attributes)}. Add it under 'prompts.attributes' in the config.",
                field="attribute",
            ) from None

    def question(self, attribute: str, rng: random.Random | None = None) -> str:
        """A paraphrase drawn with ``rng``, or the first (canonical) one for evaluation."""
        template = self.questions[0] if rng is None else rng.choice(self.questions)
        return template.format(attribute=self.words(attribute))

    def answer_prefix(self, attribute: str) -> str:
        """The answer up to the level word; the level word follows after a space."""
        return f"The {self.words(attribute)} of the image is"

    def answer(self, attribute: str, level_word: str) -> str:
        return f"{self.answer_prefix(attribute)} {level_word}."

    def pair_question(
        self, attribute: str, words: Sequence[str] = ANSWER_WORDS, side_by_side: bool = False
    ) -> str:
        """The comparator's question; ``side_by_side`` says where each image is."""
        question = PAIR_QUESTION.format(
            attribute=self.words(attribute), first=words[0], second=words[1]
        )
        return (SIDE_BY_SIDE_NOTE if side_by_side else "") + question

    def pair_answer(
        self, attribute: str, first_better: bool, words: Sequence[str] = ANSWER_WORDS
    ) -> str:
        """The comparator's answer: the answer word, then the sentence it stands for."""
        word, ordinal = (words[0], "first") if first_better else (words[1], "second")
        return f"{word}. The {ordinal} image has better {self.words(attribute)}."
