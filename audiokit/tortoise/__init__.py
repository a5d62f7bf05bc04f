"""Tortoise on the shared codec tokens: conditioning encoder, AR speech-token model, CLVP (``model.py``).
The diffusion decoder, training stages and the inference pipeline are still to come (issue 6)."""
