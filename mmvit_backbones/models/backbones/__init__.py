from .base import MultiScaleBackbone
from .pale_transformer import PaleTransformer

__all__ = ['MultiScaleBackbone', 'PaleTransformer']
