"""Training: multimodal LLMs (DeQA-Score style) and a CNN baseline that predict attribute JOD.

Light modules (labels, prompts, config, evaluation metrics) import without torch; the model,
training and prediction modules need the ``train`` extra (torch, transformers, peft,
accelerate).

jodkit never reaches the Hugging Face hub: models load from local directories, and the hub's
offline mode is set before anything imports it (a user's explicit setting wins).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
