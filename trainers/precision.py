"""AutocastAndClippingMixin: bf16 autocast (TRAIN.BF16) for a trainer's forward passes, and gradient-norm
clipping (OPTIM.CLIP_GRAD_NORM) before every optimiser step."""
import contextlib

import torch
import torch.nn as nn


class AutocastAndClippingMixin:

    def autocast(self):
        """bf16 autocast when TRAIN.BF16 is set (meant for CUDA; CPU autocast works too); else a no-op."""
        if self.cfg.TRAIN.BF16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model_update(self, names=None):
        max_norm = self.cfg.OPTIM.CLIP_GRAD_NORM
        if max_norm > 0:
            for name in self.get_model_names(names):
                nn.utils.clip_grad_norm_(self._models[name].parameters(), max_norm)
        super().model_update(names)

    def model_inference(self, input):
        with self.autocast():
            return super().model_inference(input)
