from .attention import attention, attention_probs, attention_with_probs, fused_attention, fused_attention_enabled
from .common import DropPath, Mlp, check_checkpoint_mode, drop_path_rates, maybe_checkpoint, nchw_to_nlc, nlc_to_nchw
from .partition import (
    GroupLayout,
    always_masked,
    crop,
    grid_partition,
    grid_reverse,
    pad_to,
    pad_to_multiple,
)

__all__ = [
    'attention', 'attention_probs', 'attention_with_probs', 'fused_attention', 'fused_attention_enabled',
    'DropPath', 'Mlp', 'drop_path_rates', 'maybe_checkpoint', 'check_checkpoint_mode', 'nchw_to_nlc',
    'nlc_to_nchw', 'GroupLayout', 'always_masked', 'crop', 'grid_partition', 'grid_reverse', 'pad_to',
    'pad_to_multiple'
]
