from .base import MultiScaleBackbone
from .crossformer import CrossFormer, CrossFormerPP, convert_crossformer_state_dict
from .pale_transformer import PaleTransformer

__all__ = ['MultiScaleBackbone', 'CrossFormer', 'CrossFormerPP', 'convert_crossformer_state_dict', 'PaleTransformer']
