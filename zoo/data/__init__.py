"""Data sets as device-resident uint8 tensors."""

from zoo.data.datasets import (FOLDER_PREFIX, ImageData, canonical_data_dir, canonical_dataset_name, dataset_names,
                               load_dataset, relocated)

__all__ = ["ImageData", "load_dataset", "dataset_names", "canonical_dataset_name", "canonical_data_dir",
           "FOLDER_PREFIX", "relocated"]

