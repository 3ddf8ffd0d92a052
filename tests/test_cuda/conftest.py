import pytest
import torch


@pytest.fixture
def ieee_fp32():
    """Matrix products and cuDNN convolutions in IEEE fp32 (TF32 off) for the test, so that fp32 results can be
    compared with the CPU's and between implementations at fp32's resolution."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
