"""Data: the embedded CIFAR-10 mini set, ImageFolder / CIFAR / npz sources, splits, augmentation, loaders."""

from ofa_edge.data.loader import Loader, bn_batches, derive_seed, make_loader
from ofa_edge.data.sources import ImageSet, open_source
from ofa_edge.data.task import TaskData, load_task, stratified_split
from ofa_edge.data.transforms import make_transform

__all__ = ["ImageSet", "Loader", "TaskData", "bn_batches", "derive_seed", "load_task", "make_loader",
           "make_transform", "open_source", "stratified_split"]
