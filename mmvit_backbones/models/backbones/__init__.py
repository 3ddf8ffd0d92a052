from .base import MultiScaleBackbone
from .crossformer import CrossFormer, CrossFormerPP, convert_crossformer_state_dict
from .pale_transformer import PaleTransformer
from .sg_former import SGFormer, convert_sgformer_state_dict

__all__ = [
    'MultiScaleBackbone', 'CrossFormer', 'CrossFormerPP', 'convert_crossformer_state_dict', 'PaleTransformer',
    'SGFormer', 'convert_sgformer_state_dict'
]
