"""Robot data: raw demonstration episodes, LeRobot import, preprocessing into training shards,
normalisation statistics and the VLA data loader.

Flow: raw episodes (``episodes.jsonl`` + one ``.npz`` per episode, see :mod:`.episodes`) ->
:func:`.preprocess.preprocess` -> robotics WebDataset shards + ``stats.json`` +
``preprocessing_config.yaml`` -> :mod:`.loader` batches for the VLA model.
"""
