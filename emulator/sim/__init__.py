"""The emulator's simulations: synthetic data with known answers, a simulated workforce, and real learners.

None of these modules touches HTTP or job state: the job runners call them.
- `scenes`, `openimages`  the synthetic Open Images mirror (photographs with their reference boxes inside the JPEG).
- `textcorpus`, `texttruth`  the news-headline corpus and the true class of every seeded text.
- `workforce`  simulated workers (boxes and classes) and ACS-like consolidation.
- `learner`    the box detector trained on the pixels (numpy), its confidence model and threshold calibration.
- `fasttext`   the fastText-style text classifier (BlazingText's supervised mode, and text auto-labeling).
"""
