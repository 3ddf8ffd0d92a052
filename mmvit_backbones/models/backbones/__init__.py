from .base import MultiScaleBackbone
from .sg_former import SGFormer

__all__ = ['MultiScaleBackbone', 'SGFormer']
