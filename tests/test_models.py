"""The article's backbone and heads: shapes, parameter counts, clear errors on bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtlaug_lib.core.models import (
    AdaptiveFeatureExtractor,
    Classifier,
    ConvHead,
    DenseHead,
    FeatureExtractor,
    MultiTaskModel,
    PooledClassifier,
    count_parameters,
    make_model,
    shape_trace,
)
from mtlaug_lib.core.tasks import Task
from mtlaug_lib.data.multidigits import multidigits_tasks


def test_feature_extractor_is_the_articles() -> None:
    net = FeatureExtractor()
    assert net(torch.zeros(2, 3, 28, 28)).shape == (2, 64, 7, 7)
    assert list(net.state_dict()) == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    ]
    assert count_parameters(net) == (3 * 9 * 32 + 32) + (32 * 9 * 64 + 64)
    # The forward is conv -> relu -> pool twice, written out by hand.
    x = torch.randn(4, 3, 28, 28)
    h = F.max_pool2d(F.relu(net.conv1(x)), 2)
    h = F.max_pool2d(F.relu(net.conv2(h)), 2)
    assert torch.equal(net(x), h)


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ((2, 1, 28, 28), r"expects 3 input channels .* got 1"),
        ((2, 3, 224, 224), r"expects 28 x 28 images, got 224 x 224"),
        ((2, 3, 32, 28), r"expects 28 x 28 images, got 32 x 28"),
        ((3, 28, 28), r"expects a batch of images N x C x H x W, got \(3, 28, 28\)"),
    ],
)
def test_feature_extractor_bad_input(shape: tuple[int, ...], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        FeatureExtractor()(torch.zeros(shape))


def test_adaptive_extractor_fits_any_size_and_matches_at_28() -> None:
    article = FeatureExtractor()
    net = AdaptiveFeatureExtractor()
    net.load_state_dict(article.state_dict())
    x = torch.randn(2, 3, 28, 28)
    assert torch.allclose(net(x), article(x))
    for size in [(224, 224), (32, 48), (9, 9)]:
        assert net(torch.zeros(1, 3, *size)).shape == (1, 64, 7, 7)
    with pytest.raises(ValueError, match="at least 4 x 4"):
        net(torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="expects 3 input channels"):
        net(torch.zeros(1, 4, 28, 28))


def test_classifier_is_the_articles() -> None:
    head = Classifier(10)
    assert head(torch.zeros(5, 64, 7, 7)).shape == (5, 10)
    assert count_parameters(head) == 64 * 7 * 7 * 128 + 128 + 128 * 10 + 10
    with pytest.raises(ValueError, match=r"features N x 64 x 7 x 7 \(3136 per sample\), got"):
        head(torch.zeros(5, 64, 56, 56))
    with pytest.raises(ValueError, match="argument 'num_classes' is 1, expected an int >= 2"):
        Classifier(1)


@pytest.mark.parametrize("head", [Classifier, DenseHead])
@pytest.mark.parametrize("num_classes", [1, 0, True, 3.0, "3", None])
def test_a_head_refuses_a_bad_number_of_classes(head: type, num_classes: object) -> None:
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"argument 'num_classes' is .*, expected an int >= 2"):
        head(num_classes)
    assert torch.equal(torch.get_rng_state(), state)  # refused before any weight was drawn


def test_dense_head_gives_per_pixel_logits() -> None:
    head = DenseHead(3)
    assert head(torch.zeros(2, 64, 7, 7)).shape == (2, 3, 28, 28)
    with pytest.raises(ValueError, match="DenseHead expects features"):
        head(torch.zeros(2, 32, 7, 7))


def test_multitask_model_returns_a_dict_and_reports_sharing() -> None:
    model = MultiTaskModel(
        FeatureExtractor(), {"left": Classifier(10), "right": Classifier(10), "mask": DenseHead(3)}
    )
    out, feats = model(torch.zeros(2, 3, 28, 28), return_features=True)
    assert set(out) == {"left", "right", "mask"} and feats.shape == (2, 64, 7, 7)
    report = model.parameter_report()
    assert report["shared"] == count_parameters(model.backbone)
    assert report["shared"] + report["left"] + report["right"] + report["mask"] == report["total"]
    assert model.tasks == ("left", "right", "mask")
    with pytest.raises(KeyError, match="'sum' is not one of"):
        model.task_parameters("sum")
    with pytest.raises(ValueError, match="non-empty dict"):
        MultiTaskModel(FeatureExtractor(), {})


def test_shape_trace_lists_calls_in_order() -> None:
    rows = shape_trace(FeatureExtractor(), torch.zeros(1, 3, 28, 28))
    assert [r[0] for r in rows] == ["conv1", "pool", "conv2", "pool"]
    assert [r[1] for r in rows] == [
        (1, 32, 28, 28), (1, 32, 14, 14), (1, 64, 14, 14), (1, 64, 7, 7)
    ]
    assert [r[2] for r in rows] == [896, 0, 18496, 0]


def test_make_model_still_builds_the_articles_model_weight_for_weight() -> None:
    """The article's model as it was always drawn: heads in task order, then the backbone."""
    tasks = multidigits_tasks()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        heads = {"left": Classifier(10), "right": Classifier(10), "mask": DenseHead(3)}
        expected = MultiTaskModel(FeatureExtractor(), heads).state_dict()
    for model in (make_model(tasks, seed=0), make_model(tasks, backbone="article", seed=0)):
        state = model.state_dict()
        assert list(state) == list(expected)
        assert all(torch.equal(state[k], expected[k]) for k in expected)
        assert type(model.backbone) is FeatureExtractor
    own = AdaptiveFeatureExtractor()
    model = make_model(tasks, backbone=own)
    assert model.backbone is own and isinstance(model.heads["mask"], DenseHead)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"backbone": "unet"}, r"argument 'backbone' is 'unet', expected one of \('article', "
                               r"'encoder_decoder'\)"),
        ({"width": 8}, r"argument\(s\) \['width'\] only apply to backbone='encoder_decoder', "
                       r"got backbone=None"),
        ({"backbone": FeatureExtractor(), "depth": 2}, r"\['depth'\] .* got backbone="
                                                       r"'FeatureExtractor'"),
        ({"head_hidden": 4}, "argument 'head_hidden' only applies to an encoder-decoder"),
        ({"backbone": "encoder_decoder", "width": 0}, "argument 'width' is 0"),
        ({"backbone": "encoder_decoder", "head_hidden": -1}, "argument 'head_hidden' is -1"),
    ],
)
def test_make_model_refuses_options_that_do_not_apply(kwargs: dict, pattern: str) -> None:
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match=pattern):
        make_model(multidigits_tasks(), **kwargs)
    assert torch.equal(torch.get_rng_state(), state)


def test_conv_head_and_pooled_classifier_shapes_and_errors() -> None:
    head = ConvHead(8, 1)
    assert head(torch.zeros(2, 8, 5, 7)).shape == (2, 1, 5, 7)
    with pytest.raises(ValueError, match=r"ConvHead expects features N x 8 x H x W, got shape"):
        head(torch.zeros(2, 4, 5, 7))
    with pytest.raises(ValueError, match="argument 'out_channels' is 0"):
        ConvHead(8, 0)
    clf = PooledClassifier(8, 4)
    assert clf(torch.zeros(2, 8, 5, 7)).shape == (2, 4)
    # Global average pooling: the class scores depend on the features' means only.
    x = torch.randn(1, 8, 4, 4)
    assert torch.allclose(clf(x), clf(x.flip(-1).transpose(2, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="PooledClassifier expects features N x 8 x H x W"):
        clf(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="argument 'num_classes' is 1"):
        PooledClassifier(8, 1)


def test_make_model_sizes_each_dense_head_by_the_tasks_output_channels() -> None:
    tasks = {"sem": Task("sem", "segmentation", 7)}
    model = make_model(tasks, backbone="encoder_decoder", width=4, depth=1)
    assert model.heads["sem"].out.out_channels == tasks["sem"].out_channels == 7
