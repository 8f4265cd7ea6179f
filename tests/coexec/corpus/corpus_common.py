"""Helpers the corpus scripts import as a sibling module (the way user scripts do)."""

import hashlib


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
