"""Shared test set-up: CPU threads and the synthetic data helpers on the import path."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(min(2, torch.get_num_threads()))
