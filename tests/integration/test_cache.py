import numpy as np
import pytest

from napari_samed.models import VolumeEmbeddings


@pytest.fixture
def volume():
    return np.random.default_rng(0).normal(0, 100, (6, 40, 48)).astype(np.float32)


def test_second_pass_computes_nothing(tiny_backbone, volume, tmp_path):
    first = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path)
    assert list(first.compute()) == [(i, 6) for i in range(1, 7)]
    assert tiny_backbone.encoded == 6
    again = VolumeEmbeddings(volume.copy(), tiny_backbone, "ct", tmp_path)  # a new session, same content
    assert again.key == first.key and again.missing() == []
    assert list(again.compute()) == []
    emb = again.get(3)
    assert tiny_backbone.encoded == 6
    np.testing.assert_allclose(emb.numpy(), first.get(3).numpy())
    assert emb.shape == (256, 64, 64)


def test_interrupted_pass_resumes_where_it_stopped(tiny_backbone, volume, tmp_path):
    task = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path).compute(first=4)
    assert [next(task) for _ in range(3)][-1] == (3, 6)
    task.close()  # the user cancels: the finished slices are on disk, nothing half-written
    assert tiny_backbone.encoded == 3
    assert not list(tmp_path.rglob("*.tmp"))
    resumed = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path)
    assert sorted(resumed.missing()) == [0, 1, 2]  # slice 4 and its neighbours 3, 5 came first
    assert list(resumed.compute())[-1] == (3, 3)
    assert tiny_backbone.encoded == 6


def test_lazy_slices_in_any_order(tiny_backbone, volume, tmp_path):
    emb = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path)
    emb.get(5)
    emb.get(1)
    assert tiny_backbone.encoded == 2 and emb.missing() == [0, 2, 3, 4]
    with pytest.raises(IndexError):
        emb.get(6)


def test_key_covers_image_window_and_weights(tiny_backbone, volume, tmp_path):
    key = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path).key
    assert VolumeEmbeddings(volume, tiny_backbone, "-100,100", tmp_path).key != key
    changed = volume.copy()
    changed[0, 0, 0] += 1
    assert VolumeEmbeddings(changed, tiny_backbone, "ct", tmp_path).key != key
    tiny_backbone.weights_id = "other"
    assert VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path).key != key


def test_memory_only_cache_writes_nothing(tiny_backbone, volume, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED_CACHE", str(tmp_path / "default"))
    emb = VolumeEmbeddings(volume, tiny_backbone, "ct", cache_dir=False)
    emb.get(0)
    assert emb.dir is None and not (tmp_path / "default").exists()
    assert VolumeEmbeddings(volume, tiny_backbone, "ct").dir.parent == tmp_path / "default"
