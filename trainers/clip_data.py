"""ClipDataMixin: a trainer's loaders give video clips, batches whose `img` is a (B, M, C, H, W) tensor.

The loaders are Dassl's DataManager with this project's dataset wrapper (video/wrapper.py) and clip transforms
(video/transforms.py). With DATASET.SKIP_CORRUPT, an unreadable evaluation clip is left out of its batch, never
replaced; a batch of which no clip could be read gives an empty prediction. With DATASET.ORACLE_HOLDOUT the
target clips held out for the oracle criterion get a loader of their own, `oracle_loader` (else None).
"""

from framework import DataManager, build_data_loader
from framework.distributed import main_process_first
from video.loader import check_files, drop_skipped, tune_loader
from video.transforms import build_video_transform
from video.wrapper import VideoDatasetWrapper


class ClipDataMixin:

    def build_train_transform(self):
        """The training clip transform, or a list of them (batch keys img, img2, ...: all see the same frames)."""
        return build_video_transform(self.cfg, is_train=True)

    def build_data_loader(self):
        cfg = self.cfg
        with main_process_first():  # torchrun: data generated or prepared on first use by rank 0 alone
            dm = DataManager(cfg, custom_tfm_train=self.build_train_transform(),
                             custom_tfm_test=build_video_transform(cfg, is_train=False),
                             dataset_wrapper=VideoDatasetWrapper)
        oracle = self.oracle_items(dm.dataset)
        if cfg.DATASET.CHECK_FILES:  # before any training: a broken target file is found at minute 0
            check_files({"train": dm.dataset.train_x, "val": dm.dataset.val or [], "test": dm.dataset.test,
                         "oracle holdout": oracle}, cfg)
        self.train_loader_x = tune_loader(dm.train_loader_x, cfg)
        self.train_loader_u = tune_loader(dm.train_loader_u, cfg)
        self.val_loader = tune_loader(dm.val_loader, cfg)
        self.test_loader = tune_loader(dm.test_loader, cfg)
        self.oracle_loader = tune_loader(build_data_loader(
            cfg, cfg.DATALOADER.TEST.SAMPLER, oracle, cfg.DATALOADER.TEST.BATCH_SIZE,
            tfm=build_video_transform(cfg, is_train=False), is_train=False,
            dataset_wrapper=VideoDatasetWrapper), cfg) if oracle else None
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm
        self.distribute_loaders()  # torchrun: each process reads its shard (DataParallelMixin)

    def oracle_items(self, dataset) -> list:
        """The target clips the dataset held out for the oracle criterion (DATASET.ORACLE_HOLDOUT > 0), or []."""
        oracle = list(getattr(dataset, "oracle", None) or [])
        ratio = self.cfg.DATASET.ORACLE_HOLDOUT
        if ratio > 0 and not oracle:
            raise ValueError(f"DATASET.ORACLE_HOLDOUT {ratio:g}: {type(dataset).__name__} holds out no target clips "
                             "(the benchmarks of datasets/, VideoDGDataset, do); set it to 0")
        return oracle

    def parse_batch_test(self, batch):
        batch, _ = drop_skipped(batch)  # SKIP_CORRUPT: unreadable evaluation clips are left out, never replaced
        return super().parse_batch_test(batch)

    def model_inference(self, input):
        if input.shape[0] == 0:  # every clip of the batch was unreadable and left out (SKIP_CORRUPT)
            return input.new_zeros((0, self.num_classes))
        return super().model_inference(input)
