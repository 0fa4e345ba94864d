import numpy as np
from npe2 import PluginManifest

from napari_samed.napari_io import sample_ct as napari_sample
from napari_samed.phantom import LESION, ORGAN


def test_manifest_ships_with_the_package_and_validates():
    manifest = PluginManifest.from_distribution("napari-samed")
    assert manifest.name == "napari-samed"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    sample = manifest.contributions.sample_data[0]
    assert commands[sample.command] == "napari_samed.napari_io:sample_ct"


def test_sample_is_a_ct_volume_with_organ_and_lesion_labels():
    (image, image_kw, image_type), (labels, labels_kw, labels_type) = napari_sample()
    assert (image_type, labels_type) == ("image", "labels")
    assert image.shape == labels.shape == (64, 256, 256)
    assert image.min() < -900 and 100 < np.median(image[labels == ORGAN]) < 130  # HU: air, enhanced organ
    assert np.median(image[labels == LESION]) < np.median(image[labels == ORGAN]) - 40
    assert image_kw["scale"] == labels_kw["scale"] == (2.5, 1.0, 1.0)
    np.testing.assert_array_equal(napari_sample()[0][0], image)  # deterministic
