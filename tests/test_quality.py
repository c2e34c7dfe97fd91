"""Box quality as the companion tutorial measures it: greedy confidence-ordered matching, mean IoU per image."""

from __future__ import annotations

import pytest

from groundtruth.quality import image_miou, iou, openimages_to_pixels


def test_iou_of_pixel_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_both_empty_is_perfect_and_one_empty_is_zero():
    assert image_miou([], []) == 1.0
    assert image_miou([((0, 0, 5, 5), 0.9)], []) == 0.0
    assert image_miou([], [(0, 0, 5, 5)]) == 0.0


def test_unmatched_boxes_count_as_zero_and_confidence_orders_the_matching():
    ref = [(0, 0, 10, 10)]
    # the confident box takes the reference; the other is unmatched: (1.0 + 0) / 2
    assert image_miou([((0, 0, 10, 10), 0.9), ((1, 1, 10, 10), 0.5)], ref) == pytest.approx(0.5)
    # reversed confidences: the shifted box matches first
    shifted = iou((1, 1, 10, 10), (0, 0, 10, 10))
    assert image_miou([((0, 0, 10, 10), 0.4), ((1, 1, 10, 10), 0.8)], ref) == pytest.approx(shifted / 2)
    # a missed reference box scores 0 as well
    assert image_miou([((0, 0, 10, 10), 0.9)], [*ref, (50, 50, 5, 5)]) == pytest.approx(0.5)


def test_open_images_fractions_become_pixels():
    assert openimages_to_pixels(0.1, 0.5, 0.2, 0.6, 200, 100) == pytest.approx((20, 20, 80, 40), abs=1)
