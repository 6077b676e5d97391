"""The test splits of the standard data sets as zoo reads them from their published files, by digest
(ImageData.digest). A run trained before zoo recorded its splits' digests (the bundled weights among them) is
still told apart from other files read under its data set's name: a Fashion-MNIST folder given as MNIST's."""

from __future__ import annotations

# (data set, pixels as config.json's data.pixels says) -> the digest of its test split as zoo reads it; measured with
# zoo.load_dataset(NAME).digest("test") on the IDX files torchvision downloads (binarised: as a dynamically
# binarised run's dataset reads them, its test images binarised once with a fixed seed)
TEST_DIGESTS = {
    ("mnist", "grey levels"): "a0863a96c44e5666",
    ("mnist", "binarised (dynamic)"): "a26c06caa910148b",
    ("fashion-mnist", "grey levels"): "9a494dc49efeb996",
}


def known_digests(data_record: dict) -> dict[str, str]:
    """The split digests a run's config.json `data` table records, else the published test split's where its data
    set is a standard one read as it was (images of its size, as many as the published files hold)."""
    recorded = data_record.get("digests")
    if isinstance(recorded, dict):
        return recorded
    test = TEST_DIGESTS.get((data_record.get("name"), data_record.get("pixels")))
    return {"test": test} if test else {}
