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


def test_matching_is_greedy_by_confidence_not_an_optimal_assignment():
    # The confident box grabs the reference it overlaps best, leaving the other prediction a poor one; an optimal
    # assignment would have swapped them. The tutorial's method is greedy, and so is ours.
    refs = [(0, 0, 10, 10), (6, 0, 10, 10)]
    confident, timid = (3, 0, 10, 10), (0, 0, 10, 10)
    best_for_confident = max(iou(confident, r) for r in refs)
    assert iou(confident, refs[0]) == iou(confident, refs[1])  # a tie: the first reference box wins
    expected = (best_for_confident + iou(timid, refs[1])) / 2
    assert image_miou([(confident, 0.9), (timid, 0.1)], refs) == pytest.approx(expected)
    assert expected < (iou(timid, refs[0]) + iou(confident, refs[1])) / 2


def test_touching_and_degenerate_boxes_do_not_overlap():
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0
    assert image_miou([((100, 100, 5, 5), 0.9)], [(0, 0, 5, 5)]) == 0.0


def test_pixel_boxes_are_whole_pixels():
    box = openimages_to_pixels("0.012500", "0.195312", "0.148438", "0.587500", 1024, 683)
    assert box == (13, 101, 187, 300) and all(isinstance(v, int) for v in box)
