"""SG-Former traces without baking its token counts in: ``torch.export`` reproduces eager outputs, and
``torch.compile(dynamic=True)`` reuses one graph across input sizes (issue 15 item 4, issue 12 item 3)."""
import torch

from mmvit_backbones.models.backbones import SGFormer

TINY = dict(embed_dims=[16, 32, 64, 32], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 2])


def tiny():
    torch.manual_seed(0)
    return SGFormer(arch=TINY, drop_path_rate=0.).eval()


def test_torch_export_reproduces_eager_outputs():
    model = tiny()
    # Not the pre-training size (the position embedding is resized in the graph) and padded windows.
    x = torch.rand(2, 3, 45, 61)
    program = torch.export.export(model, (x, ))
    with torch.no_grad():
        expected = model(x)
        got = program.module()(x)
        again = model(x)  # exporting leaves the eager model as it was
    for out, ref, ref_again in zip(got, expected, again):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ref_again, ref, rtol=0, atol=0)


def test_dynamic_compile_reuses_one_graph_across_token_counts():
    model = tiny()
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    # Stage-1 maps of 12x16 and 11x15 tokens: other token counts and other reallocation plans (192 vs 165
    # tokens, padded groups of other lengths), the same padding pattern.
    for size in ((45, 61), (41, 57)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            for out, ref in zip(compiled(x), model(x)):
                torch.testing.assert_close(out, ref)
    assert len(graphs) == 1
