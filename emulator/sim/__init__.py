"""The emulator's simulations: a synthetic Open Images mirror, a simulated human workforce, and a real learner.

None of these modules touches HTTP or job state: the labeling-job state machine calls them.
- `scenes`     paints one synthetic photograph (birds, distractors, clutter) and reports what it drew where.
- `openimages` the mirror: taxonomy subset, reference boxes inside each JPEG, annotation files, seeding S3.
- `workforce`  simulated workers answering from the reference boxes, and ACS-BoundingBox-like consolidation.
- `learner`    a detector trained on the pixels (numpy, CPU), its confidence model and threshold calibration.
"""
