from .base import MultiScaleBackbone
from .crossformer import CrossFormer, CrossFormerPP, convert_crossformer_state_dict

__all__ = ['MultiScaleBackbone', 'CrossFormer', 'CrossFormerPP', 'convert_crossformer_state_dict']
