from .base import MultiScaleBackbone

__all__ = ['MultiScaleBackbone']
