"""Helpers the corpus scripts import as a sibling module (the way user scripts do)."""

import hashlib
import os

import torch


def device():
    """The device a corpus program runs on: TERRA_TEST_DEVICE (default "cpu").

    Programs build their data as before and move models and data there with `.to(device)`,
    the way a user would; on the CPU that is a no-op, so stdout stays the same.
    """
    return torch.device(os.environ.get("TERRA_TEST_DEVICE", "cpu"))


def checksum(*objects):
    """Prints one line: sha256 over the bytes of every parameter and buffer (or tensor)."""
    digest = hashlib.sha256()
    for obj in objects:
        if hasattr(obj, "state_dict"):
            tensors = [tensor for _, tensor in sorted(obj.state_dict().items())]
        else:
            tensors = [obj]
        for tensor in tensors:
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    print("checksum", digest.hexdigest())
