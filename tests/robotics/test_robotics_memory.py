"""The in-memory split: the streamed samples, random batches that cover each epoch, exact resume, DDP shares."""

import itertools

import pytest
import torch

from robodata_helpers import write_dataset
from test_robotics_loader import batch_ids, sample_id
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.loader import RoboticsDataset
from vlaforge.robotics.memory import InMemorySamples
from vlaforge.robotics.preprocess import preprocess


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    raw = write_dataset(root / "raw", 6, lengths=(5, 9), seed=3)
    preprocess(PreprocessConfig(past_steps=1, future_steps=3, image_indices=[0], val_fraction=0.2,
                                samples_per_shard=5, num_workers=0), [raw], str(root / "out"))
    return str(root / "out")


@pytest.mark.parametrize("workers", [0, 2])
def test_holds_the_streamed_samples(uri, workers):
    samples = InMemorySamples(uri, workers=workers)
    streamed = {sample_id(s): s for s in RoboticsDataset(uri, "train", infinite=False, shuffle_buffer=0)}
    assert len(samples) == len(streamed)
    batch = samples.batch(torch.arange(len(samples)))
    ids = batch_ids(batch)
    assert sorted(ids) == sorted(streamed)
    assert torch.equal(batch["images"], torch.stack([streamed[i]["images"] for i in ids]))
    assert torch.equal(batch["action_mask"], torch.stack([streamed[i]["action_mask"] for i in ids]))
    assert batch["images"].dtype == torch.uint8 and batch["action_mask"].dtype == torch.bool
    assert batch["task"] == [streamed[i]["task"] for i in ids]


def test_epochs_cover_every_sample_and_resume_exactly(uri):
    samples = InMemorySamples(uri)
    per_epoch = len(samples) // 4
    stream = samples.batches(4, seed=1)
    first = [batch_ids(b) for b in itertools.islice(stream, 3 * per_epoch)]
    epoch = [i for b in first[:per_epoch] for i in b]
    assert len(set(epoch)) == len(epoch) == per_epoch * 4  # no repeats within an epoch
    assert first[:per_epoch] != first[per_epoch:2 * per_epoch]  # each epoch its own order
    resumed = samples.batches(4, seed=1, start_batch=per_epoch + 1)
    assert [batch_ids(b) for b in itertools.islice(resumed, per_epoch)] == first[per_epoch + 1:2 * per_epoch + 1]
    assert batch_ids(next(samples.batches(4, seed=2))) != first[0]


def test_ranks_share_an_epoch_disjointly_and_errors_name_the_problem(uri):
    samples = InMemorySamples(uri)
    shares = [[i for b in itertools.islice(samples.batches(2, seed=0, rank=r, world=2), len(samples) // 4)
               for i in batch_ids(b)] for r in (0, 1)]
    assert not set(shares[0]) & set(shares[1])
    samples.add_column("extra", torch.arange(len(samples)))
    assert next(samples.batches(3, seed=0))["extra"].shape == (3,)
    with pytest.raises(ValueError, match="column 'bad' has 2 rows"):
        samples.add_column("bad", torch.zeros(2))
    with pytest.raises(ValueError, match="fill no batch of 1000"):
        next(samples.batches(1000))


def test_balanced_epochs_draw_every_task_equally_often(uri):
    samples = InMemorySamples(uri)
    samples.codes["task"] = (torch.arange(len(samples)) < 4).long()  # 4 samples of task 1, the rest task 0
    plain = samples.codes["task"][samples.epoch_order(0, 0)].float().mean()
    drawn = torch.cat([samples.codes["task"][samples.epoch_order(0, e, balance_tasks=True)] for e in range(40)])
    assert plain == 4 / len(samples) and abs(drawn.float().mean() - 0.5) < 0.05
    assert torch.equal(samples.epoch_order(0, 3, True), samples.epoch_order(0, 3, True))  # resumable
