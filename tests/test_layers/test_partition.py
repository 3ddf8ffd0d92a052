import pytest
import torch

from mmvit_backbones.models.layers import grid_partition, grid_reverse, pad_to_multiple, padding_key_bias


def coordinate_map(h, w):
    """A (1, H, W, 2) map whose channels are each pixel's own (row, col)."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.stack([rows, cols], dim=-1)[None].float()


@pytest.mark.parametrize('group,interval,size', [((2, 3), (1, 1), (4, 9)), ((2, 2), (3, 2), (12, 8)),
                                                 ((3, 8), (2, 1), (6, 8))])
def test_grid_partition_places_pixels_as_documented(group, interval, size):
    (gh, gw), (ih, iw) = group, interval
    groups = grid_partition(coordinate_map(*size), group, interval)
    rh_count, rw_count = size[0] // (gh * ih), size[1] // (gw * iw)
    assert groups.shape == (rh_count * rw_count * ih * iw, gh * gw, 2)
    index = 0
    for rh in range(rh_count):
        for rw in range(rw_count):
            for i_h in range(ih):
                for i_w in range(iw):
                    for member in range(gh * gw):
                        g_h, g_w = divmod(member, gw)
                        expected = [rh * gh * ih + g_h * ih + i_h, rw * gw * iw + g_w * iw + i_w]
                        assert groups[index, member].tolist() == expected
                    index += 1


def test_interlaced_rows_form_a_pale_row_group():
    # Pale row groups of s_r = 2 rows on an 8-row map: group i holds rows {i, i + 4}.
    groups = grid_partition(coordinate_map(8, 5), group=(2, 5), interval=(4, 1))
    assert groups.shape == (4, 10, 2)
    for i in range(4):
        assert sorted(set(groups[i, :, 0].long().tolist())) == [i, i + 4]
        assert sorted(set(groups[i, :, 1].long().tolist())) == list(range(5))


def test_grid_reverse_inverts_partition():
    x = torch.randn(2, 12, 8, 3)
    for group, interval in [((3, 2), (1, 1)), ((2, 2), (3, 2)), ((12, 1), (1, 8))]:
        assert torch.equal(grid_reverse(grid_partition(x, group, interval), (12, 8), group, interval), x)


def test_grid_partition_rejects_untiled_maps():
    with pytest.raises(ValueError, match='does not tile'):
        grid_partition(torch.zeros(1, 7, 8, 1), (2, 2))


def test_pad_to_multiple_pads_bottom_right_only():
    x = torch.ones(1, 5, 6, 2)
    padded, pads = pad_to_multiple(x, (4, 3))
    assert pads == (3, 0) and padded.shape == (1, 8, 6, 2)
    assert padded[:, :5].eq(1).all() and padded[:, 5:].eq(0).all()


def test_padding_key_bias_marks_padded_keys_of_each_group():
    bias = padding_key_bias((3, 3), (4, 4), group=(2, 2), value=-100.0)
    # Windows ordered row-major; keys row-major inside a window.
    assert bias.shape == (4, 1, 1, 4)
    assert bias[0].flatten().tolist() == [0, 0, 0, 0]
    assert bias[1].flatten().tolist() == [0, -100, 0, -100]
    assert bias[2].flatten().tolist() == [0, 0, -100, -100]
    assert bias[3].flatten().tolist() == [0, -100, -100, -100]
    assert padding_key_bias((4, 4), (4, 4), group=(2, 2)) is None
