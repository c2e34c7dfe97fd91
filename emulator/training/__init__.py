"""SageMaker training jobs, models and batch-transform jobs that really run, in the emulator.

`models.py` holds the records (each owns its transitions) and the backends; `responses.py` translates the JSON 1.1
wire format, `validation.py` checks requests; `runner.py` runs a training job (script mode under the training
toolkit's contract in `scriptmode.py`, BlazingText in `blazingtext.py`); `transform.py` runs a batch-transform job
against a model server from `serving.py` (`serving_worker.py` is the inference toolkit's side, in a subprocess);
`data.py` reads channels and tarballs safely; `processes.py` keeps the user's processes from outliving the emulator.
"""
