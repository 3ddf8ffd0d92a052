import pytest
import torch
from mmvit_reference.partition_reference import padding_key_bias

from mmvit_backbones.models.layers import (
    GroupLayout,
    crop,
    grid_partition,
    grid_reverse,
    pad_to_multiple,
)


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


def test_the_key_bias_oracle_marks_padded_keys_of_each_group():
    # tests/reference/partition_reference.py: the masks as the families built them before GroupLayout.
    bias = padding_key_bias((3, 3), (4, 4), group=(2, 2), value=-100.0)
    # Windows ordered row-major; keys row-major inside a window.
    assert bias.shape == (4, 1, 1, 4)
    assert bias[0].flatten().tolist() == [0, 0, 0, 0]
    assert bias[1].flatten().tolist() == [0, -100, 0, -100]
    assert bias[2].flatten().tolist() == [0, 0, -100, -100]
    assert bias[3].flatten().tolist() == [0, -100, -100, -100]
    assert padding_key_bias((4, 4), (4, 4), group=(2, 2)) is None


# ----------------------------------------------------------------------------
# GroupLayout: the one grouping vocabulary
# ----------------------------------------------------------------------------
def real_pixels(layout):
    """Grouped (row, col) coordinates of every token and whether it is a real pixel."""
    hp, wp = layout.padded_size
    groups = grid_partition(coordinate_map(hp, wp), layout.group, layout.interval)
    real = (groups[..., 0] < layout.size[0]) & (groups[..., 1] < layout.size[1])
    return groups, real


def check_masks(layout, value):
    _, real = real_pixels(layout)
    if not layout.padded:
        assert layout.key_bias is None and layout.query_mask is None
        return
    assert layout.query_mask.dtype == torch.bool and layout.query_mask.shape == real.shape
    assert torch.equal(layout.query_mask, real)
    assert layout.key_bias.shape == (layout.num_groups, 1, 1, layout.num_tokens)
    expected = torch.where(real, torch.tensor(0.), torch.tensor(value))
    assert torch.equal(layout.key_bias[:, 0, 0], expected)
    # The same bias the families built before GroupLayout.
    oracle = padding_key_bias(layout.size, layout.padded_size, layout.group, layout.interval, value)
    assert torch.equal(layout.key_bias, oracle)


@pytest.mark.parametrize('size, window, padded', [((8, 9), (4, 3), (8, 9)), ((5, 7), (3, 3), (6, 9))])
def test_windows_layout(size, window, padded):
    layout = GroupLayout.windows(size, window, key_bias_value=-5.)
    assert layout.key() == (size, padded, window, (1, 1))
    assert layout.num_groups == (padded[0] // window[0]) * (padded[1] // window[1])
    check_masks(layout, -5.)


def test_sg_local_windows_layout_masks_with_inf():
    layout = GroupLayout.sg_local_windows((5, 6), 4)
    assert layout.key() == ((5, 6), (8, 8), (4, 4), (1, 1))
    check_masks(layout, float('-inf'))
    # The query mask is what SG-Former's significance averages over: per window, its real queries.
    assert layout.query_mask.sum(1).tolist() == [16, 8, 4, 2]


@pytest.mark.parametrize('size, version, expected', [
    ((12, 10), 2, ((12, 12), (3, 3), (2, 2))),  # G x G spaced I apart, padded to G·I = 6
    ((11, 10), 1, ((12, 10), (6, 5), (2, 2))),  # I x I groups of ceil(H/I) x ceil(W/I), padded to I
])
def test_long_distance_layout(size, version, expected):
    layout = GroupLayout.long_distance(size, group_size=3, interval=2, lda_version=version, key_bias_value=-1e6)
    assert (layout.padded_size, layout.group, layout.interval) == expected
    check_masks(layout, -1e6)
    groups, _ = real_pixels(layout)
    # Members of one group are I apart along both axes.
    first = groups[0].long()
    assert set(first[:, 0].tolist()) <= set(range(0, 12, 2)) and set(first[:, 1].tolist()) <= set(range(0, 12, 2))


def test_long_distance_rejects_unknown_version():
    with pytest.raises(ValueError, match='lda_version must be 1 or 2, got 3'):
        GroupLayout.long_distance((8, 8), 2, 2, lda_version=3)


def test_pale_layouts():
    rows, cols = GroupLayout.pales((9, 10), (3, 3))
    assert rows.key() == ((9, 10), (9, 12), (3, 12), (3, 1))
    assert cols.key() == ((9, 10), (9, 12), (9, 3), (1, 4))
    for layout in (rows, cols):
        check_masks(layout, float('-inf'))
    # Row group i holds rows i, i + 3, i + 6 (interlaced).
    groups, _ = real_pixels(rows)
    assert [sorted(set(g[:, 0].long().tolist())) for g in groups] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    # An axis shorter than the pale is one group along it.
    rows, cols = GroupLayout.pales((2, 20), (7, 7))
    assert rows.group == (2, 21) and rows.num_groups == 1 and cols.group == (2, 7)


@pytest.mark.parametrize('geometry', [
    ((9, 10), (9, 12), (3, 12), (3, 1)),  # pale rows
    ((9, 10), (9, 12), (9, 3), (1, 4)),  # pale columns
    ((13, 17), (14, 21), (7, 7), (1, 1)),  # windows
    ((13, 17), (16, 24), (2, 2), (4, 6)),  # interval groups (LDA)
    ((5, 3), (7, 7), (7, 7), (1, 1)),  # one padded group
])
def test_traced_real_token_mask_is_the_eager_one(geometry):
    from mmvit_backbones.models.layers.partition import _real_tokens, _real_tokens_by_index
    size, padded, group, interval = geometry
    regions = (padded[0] // (group[0] * interval[0]), padded[1] // (group[1] * interval[1]))
    expected = _real_tokens(size, padded, group, interval, None)
    assert torch.equal(_real_tokens_by_index(size, regions, group, interval, None), expected)
    # and it is where real pixels land in grid_partition's order
    real = torch.zeros(1, *padded, 1, dtype=torch.bool)
    real[:, :size[0], :size[1]] = True
    assert torch.equal(grid_partition(real, group, interval)[..., 0], expected)


def test_pale_layouts_while_traced_pad_short_axes_to_the_pale(monkeypatch):
    from mmvit_backbones.models.layers import partition
    monkeypatch.setattr(partition, 'always_masked', lambda: True)
    rows, cols = GroupLayout.pales((2, 20), (7, 7))
    assert rows.key() == ((2, 20), (7, 21), (7, 21), (1, 1)) and cols.key() == ((2, 20), (7, 21), (7, 7), (1, 3))
    check_masks(rows, float('-inf'))
    rows, _ = GroupLayout.pales((14, 14), (7, 7))  # masks even where nothing is padded
    assert rows.key_bias is not None and not rows.padded and rows.key_bias.eq(0).all()


def test_layout_partition_and_reverse_crop():
    x = torch.randn(2, 5, 7, 3)
    for layout in (GroupLayout.windows((5, 7), (2, 3)), GroupLayout.long_distance((5, 7), 2, 2, 1),
                   *GroupLayout.pales((5, 7), (2, 2)), GroupLayout.whole_map((5, 7))):
        groups = layout.partition(x)
        assert groups.shape == (2 * layout.num_groups, layout.num_tokens, 3)
        assert torch.equal(layout.reverse(groups), x)


def layouts_of_every_kind():
    """Padded and unpadded layouts of every constructor (intervals on both axes)."""
    return (GroupLayout.sg_local_windows((7, 7), 7), GroupLayout.sg_local_windows((9, 12), 4),
            GroupLayout.windows((5, 7), (2, 3)), GroupLayout.long_distance((9, 10), 2, 3, 2),
            GroupLayout.long_distance((5, 7), 2, 2, 1), *GroupLayout.pales((9, 10), (3, 3)))


@pytest.mark.parametrize('layout', layouts_of_every_kind(), ids=lambda layout: str(layout.key()))
def test_partition_heads_is_partition_with_heads_folded_into_groups(layout):
    b, parts, heads, d = 2, 3, 2, 4
    h, w = layout.size
    x = torch.randn(b, h, w, parts * heads * d)
    grouped = layout.partition_heads(x, heads, d)
    assert grouped.shape == (parts, b, layout.num_groups * heads, layout.num_tokens, d)
    # Per part and head: the plain partition of that part's and head's channels, groups then heads.
    expected = layout.partition(x).view(b, layout.num_groups, layout.num_tokens, parts, heads, d)
    assert torch.equal(grouped, expected.permute(3, 0, 1, 4, 2, 5).reshape(grouped.shape))
    # Heads back to channels (padded map, cropped by the caller); one value per token likewise.
    q = grouped[0]
    assert torch.equal(crop(layout.reverse_heads(q, heads), layout.size), x[..., :heads * d])
    values = x[..., 0]
    grouped_values = layout.partition(values[..., None])[..., 0].view(b, layout.num_groups, layout.num_tokens)
    assert torch.equal(crop(layout.reverse_values(grouped_values)[..., None], layout.size)[..., 0], values)
