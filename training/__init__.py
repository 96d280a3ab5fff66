"""Training: multimodal LLMs (DeQA-Score style) and a CNN baseline that predict attribute JOD.

Light modules (labels, prompts, config, evaluation metrics) import without torch; the model,
training and prediction modules need the ``train`` extra (torch, transformers, peft,
accelerate).
"""
